"""What the tests of `specc import` share: how an import is compared with what it came from."""

from __future__ import annotations

import numpy as np
import torch
from click.testing import CliRunner

from specc.cli import main


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


def random_state(net, roles: tuple[str, ...] = ("bias", "scale")) -> dict[str, torch.Tensor]:
    """`net`'s state with batchnorm statistics and scales made random, so that a folded batchnorm is not
    the identity, and `roles` too: the exporter leaves out a bias that is all zeros (as xavier's are)."""
    generator = torch.Generator().manual_seed(0)
    state = net.to_torch().state_dict()
    batchnorms = {name.rsplit(".", 1)[0] for name in state if name.endswith("running_var")}
    for name, tensor in state.items():
        owner, role = name.rsplit(".", 1)
        if (owner in batchnorms or role in roles) and tensor.is_floating_point():
            noise = torch.rand(tensor.shape, generator=generator)
            state[name] = noise + 0.5 if role in ("weight", "running_var", "scale") else noise - 0.5
    return state


def assert_named_and_nothing_written(model, message: str, tmp_path) -> None:
    """`specc import` of the ONNX `model` exits 2 with `message` and leaves only the model in `tmp_path`."""
    import onnx

    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    result = CliRunner().invoke(main, ["import", str(path), "-o", str(tmp_path / "m.cnn"), "--weights", str(tmp_path / "m.safetensors")])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def assert_written_import_agrees(spec, weights, model, input_shape: tuple[int, ...]) -> None:
    """The spec and weights `specc import` wrote load as specc loads any, and compute what `model` does."""
    import specc
    from specc.runners.weights import load_strict

    net = specc.load(spec)
    assert net.check().total_params == sum(p.numel() for p in model.parameters())
    mine = net.to_torch().eval()
    load_strict(mine, weights, str(spec), net.name, "")
    x = torch.randn(2, *input_shape, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(mine(x), model.eval()(x), rtol=0, atol=1e-5)
