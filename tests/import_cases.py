"""What the tests of `specc import` share: how an import is compared with what it came from."""

from __future__ import annotations

import numpy as np
import torch


def rows(net) -> list[tuple]:
    """The check report, row by row. Dropout and stochastic depth are the identity at inference, and
    the exporter leaves them out of the graph."""
    kept = [layer for layer in net.network.layers() if layer.kind.name not in ("dropout", "stochastic_depth")]
    return [(layer.kind.name, layer.out_shape, layer.params, layer.macs, layer.receptive_field) for layer in kept]


def outputs(imported, x) -> np.ndarray:
    """The imported network's outputs on `x`, with the imported weights."""
    model = imported.net.to_torch().eval()
    model.load_state_dict(imported.tensors)
    with torch.no_grad():
        return model(torch.as_tensor(np.asarray(x))).numpy()
