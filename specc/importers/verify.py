"""The import's promise, checked before anything is written: the imported network computes what
its source computes (onnxruntime on the ONNX file, or the PyTorch module itself)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import EXIT_FAILURE, SpeccError

BATCH = 2  # unless the source fixes its batch size


def disagreement(
    imported, reference: Callable[[np.ndarray], np.ndarray], input_shape: tuple[int, ...], batch: int | None = None
) -> tuple[float, float]:
    """The largest |imported - reference| on one random batch, and what is allowed there.

    The tolerance is the exporter's own (specc.backends.onnx.tolerance): float32 rounding grows
    with the outputs, and a deep untrained network's logits reach the hundreds.
    """
    import torch

    from ..backends.onnx import tolerance

    x = np.random.default_rng(0).standard_normal((batch or BATCH, *input_shape)).astype(np.float32)
    with torch.device("meta"):  # built without initial weights, which the imported ones replace
        model = imported.net.to_torch().eval()
    model.load_state_dict(imported.tensors, assign=True)
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    try:
        want = np.asarray(reference(x))
    except Exception as err:  # onnxruntime refuses a graph in many ways; each means it cannot be compared
        raise SpeccError(f"cannot run the source to compare with the import: {err}", exit_code=EXIT_FAILURE) from None
    if got.shape != want.shape:
        return float("inf"), 0.0
    return float(np.abs(got - want).max()), tolerance(float(np.abs(want).max()))


def agrees(imported, reference, input_shape: tuple[int, ...], batch: int | None = None) -> bool:
    worst, allowed = disagreement(imported, reference, input_shape, batch)
    return worst <= allowed  # NaN disagrees


def check_agrees(imported, reference, input_shape: tuple[int, ...], source: str, batch: int | None = None) -> None:
    worst, allowed = disagreement(imported, reference, input_shape, batch)
    if not worst <= allowed:
        raise SpeccError(
            f"the spec imported from {source} computes something else: its outputs differ by {worst:.3g} (allowed {allowed:.3g})",
            hint="nothing was written; this is a bug in specc import: please report it with the model",
            exit_code=EXIT_FAILURE,
        )


def onnxruntime_reference(path) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def torch_reference(model) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    return run
