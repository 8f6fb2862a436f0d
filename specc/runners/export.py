"""`specc export`: a checked spec, with trained or random weights, to one verified ONNX file.

The spec is loaded and checked, the weights matched to it (runners/weights.py), the metadata
made (runners/metadata.py); the ONNX backend converts, checks and compares with torch. The file
is written beside `output` and takes its name only once it has passed, so a failed export
leaves any earlier file as it was.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..api import Net, load
from ..backends import onnx
from ..errors import UsageError
from . import metadata
from .weights import load_strict


@dataclass
class Exported:
    """What `export` wrote and how well it agrees with torch."""

    path: Path
    opset: int
    nodes: int
    size_bytes: int
    weights: Path | None  # None: random initial weights
    max_abs_diff: dict[int, float]  # batch size -> largest |onnxruntime - torch|
    tolerance: float  # what max_abs_diff could have been: TOLERANCE · max(1, largest |torch output|)
    metadata: dict[str, str]


def export(spec: str | Path | Net, output: str | Path, weights: str | Path | None = None, opset: int = onnx.DEFAULT_OPSET) -> Exported:
    """Write `spec` (a .cnn path or a loaded Net) as one ONNX file at `output`, checked against torch."""
    output = Path(output)
    if not output.parent.is_dir():
        raise UsageError(f"cannot write {output}: there is no folder {output.parent}")
    if output.exists() and not output.is_file():  # the file is written beside it and renamed over it
        raise UsageError(f"cannot write {output}: it is not a regular file", hint="name a file, e.g. -o net.onnx")
    net = spec if isinstance(spec, Net) else load(spec)
    report = net.check()
    model = net.to_torch().eval()
    trained = {}
    if weights is not None:
        hint = "export with the spec the weights were trained from"
        trained = load_strict(model, Path(weights), net.source.path, net.name, hint)
    meta = metadata.for_export(net, report.output_shape, weights, trained)
    tmp = output.with_name(f"{output.name}.tmp-{os.getpid()}")
    try:
        proto = onnx.convert(model, net.input_shape, net.name, opset, meta, net.source.path)
        onnx.save_checked(proto, tmp)
        diffs, allowed = onnx.check_agreement(model, tmp, net.input_shape, output)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    size = output.stat().st_size
    return Exported(output, opset, len(proto.graph.node), size, Path(weights) if weights else None, diffs, allowed, meta)
