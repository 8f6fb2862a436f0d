"""A torch module to one verified ONNX file: convert, name the nodes, check, compare with torch.

The file is written by `torch.onnx.export` (the torch.export-based exporter),
with the weights inside and a dynamic batch axis. Its nodes are renamed after
the spec's layers (`layer1.0.conv1/Conv`) and it carries the metadata it is
given (what it is for: runners/metadata.py). A file passes when `onnx.checker`
accepts it and onnxruntime, on fresh random inputs of two batch sizes, agrees
with the torch module (`check_agreement`). The command around it, which loads
the spec and the weights, is runners/export.py.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from pathlib import Path

from .. import __version__
from ..errors import EXIT_FAILURE, SpeccError

# The exporter's own operator implementations are written for opset 18; any
# other opset goes through ONNX's version converter. onnxruntime runs 18 since 1.14.
DEFAULT_OPSET = 18
# Largest |onnxruntime - torch| an export may show, times max(1, the largest |torch output|): float32
# rounding grows with the values, and a correct export of an untrained ResNet-50 (logits in the hundreds)
# differs by more than 1e-4 in absolute terms.
TOLERANCE = 1e-4
CHECK_BATCHES = (1, 5)  # batch 1 proves the batch axis did not get fixed at the example's size
_EXAMPLE_BATCH = 2  # the exporter turns a batch of 1 into a constant


def tolerance(largest_output: float) -> float:
    """The largest |onnxruntime - torch| allowed where torch's outputs reach `largest_output` in absolute value."""
    return TOLERANCE * max(1.0, largest_output)


def check_agreement(model, path: Path, input_shape: tuple[int, ...], output: Path) -> tuple[dict[int, float], float]:
    """onnxruntime against torch on one random batch of each CHECK_BATCHES size: the largest differences, and what was allowed.

    Raises where they disagree by more than `tolerance`: the caller then does not give the file
    its final name `output`.
    """
    import torch

    with torch.no_grad():
        compared = {batch: _compare(model, path, (batch, *input_shape)) for batch in CHECK_BATCHES}
    diffs = {batch: diff for batch, (diff, _) in compared.items()}
    worst, largest = max(diffs.values()), max(out for _, out in compared.values())
    allowed = tolerance(largest)
    if not worst <= allowed:  # written so that NaN fails too
        raise SpeccError(
            f"onnxruntime and torch disagree by up to {worst:.3g} where torch's outputs reach {largest:.3g} "
            f"(tolerance {TOLERANCE:g} · max(1, {largest:.3g}) = {allowed:.3g}); {output} was not written",
            hint="an operator is exported differently from how torch runs it; try another --opset, and report it",
            exit_code=EXIT_FAILURE,
        )
    return diffs, allowed


# --- the export itself ---------------------------------------------------------


def convert(model, input_shape: tuple[int, ...], name: str, opset: int, metadata: dict[str, str], source: str):
    """The ModelProto of `model` (network `name`, from the file `source`): nodes named after its modules, metadata attached."""
    import onnx
    import torch

    example = torch.randn(_EXAMPLE_BATCH, *input_shape)
    output_name = metadata["specc.output"]  # probabilities, logits or values
    # The exporter logs a warning per missing torchvision operator, torch.export a FutureWarning,
    # and onnxscript a traceback when it cannot convert to the opset asked for (checked below).
    try:
        with _quiet_loggers("torch.onnx", "onnxscript"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                (example,),
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                input_names=["input"],
                output_names=[output_name],
                opset_version=opset,
                external_data=False,
                verbose=False,
            )
    except Exception as err:  # the exporter raises many kinds; each means specc built something it cannot export
        raise SpeccError(f"torch.onnx.export failed on {name}: {err}", exit_code=EXIT_FAILURE) from err
    proto = program.model_proto
    written = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    if written != opset:
        raise SpeccError(
            f"torch.onnx.export cannot write {name} in opset {opset}: ONNX's version converter could not take it "
            f"from opset {written}, the one the exporter writes",
            hint=f"use --opset {written}, or an opset nearer to it",
            exit_code=EXIT_FAILURE,
        )
    name_nodes(proto.graph, set(model.state_dict()))
    onnx.helper.set_model_props(proto, metadata)
    proto.doc_string = f"{name}, exported by specc {__version__} from {Path(source).name}"
    return proto


@contextmanager
def _quiet_loggers(*names: str):
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def name_nodes(graph, parameters: set[str]) -> None:
    """Rename nodes after the layer they compute: `layer1.0.conv1/Conv`.

    The exporter names nodes `node_Conv_293`, but records the module each came
    from in the metadata entry `namespace`. A node whose weights belong to
    another layer (a conv with the following batchnorm folded in) is named
    after both: `stem+bn/Conv`. Nodes outside any layer (residual adds) keep
    the exporter's name.
    """
    taken: set[str] = {node.name for node in graph.node}
    for node in graph.node:
        layer = _layer_of(node, parameters)
        if layer is None:
            continue
        name, n = f"{layer}/{node.op_type}", 1
        while name in taken:
            n += 1
            name = f"{layer}/{node.op_type}_{n}"
        taken.add(name)
        node.name = name


def _layer_of(node, parameters: set[str]) -> str | None:
    owner = next((name.rsplit(".", 1)[0] for name in node.input if name in parameters), None)
    scope = _module_of(node)
    if owner is None or scope is None or owner == scope:
        return owner or scope
    return f"{owner}+{scope}"


def _module_of(node) -> str | None:
    """The innermost module in the node's `namespace`: 'root: Class/layer1.0.bn1: BatchNorm2d/op: aten.op'."""
    namespace = next((p.value for p in node.metadata_props if p.key == "namespace"), "")
    modules = [part.split(": ", 1)[0] for part in namespace.split("/")[1:-1]]
    return next((name for name in reversed(modules) if name), None)


def save_checked(proto, path: Path) -> None:
    """Write `proto` to `path` and pass it through onnx.checker with its full check."""
    import onnx

    onnx.save_model(proto, path)
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as err:
        raise SpeccError(f"the exported model fails onnx.checker: {err}", exit_code=EXIT_FAILURE) from None


def _compare(model, path: Path, shape: tuple[int, ...]) -> tuple[float, float]:
    """Largest |onnxruntime - torch|, and largest |torch output|, on one fresh random batch."""
    import numpy as np
    import onnxruntime as ort
    import torch

    x = torch.randn(*shape)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    want = model(x).numpy()
    if got.shape != want.shape:
        raise SpeccError(f"onnxruntime gives shape {got.shape} at batch {shape[0]}, torch {want.shape}", exit_code=EXIT_FAILURE)
    return float(np.max(np.abs(got - want))), float(np.max(np.abs(want)))
