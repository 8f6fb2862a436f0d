"""A checked network, with trained or random weights, to one verified ONNX file.

The file is written by `torch.onnx.export` (the torch.export-based exporter),
with the weights inside and a dynamic batch axis. Its nodes are renamed after
the spec's layers (`layer1.0.conv1/Conv`), and its metadata carries what
`specc predict` needs to use it without the spec or torch: the spec text, the
class names, the input shape and normalisation, the task (classes, binary,
multilabel, regression, segmentation: how to read the output), and whether the
output is already probabilities (the spec's final softmax or sigmoid is in the
graph). Before the file takes its final name it must pass `onnx.checker` and
agree with the torch module, run by onnxruntime on fresh random inputs of two
batch sizes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..api import Net, load
from ..errors import EXIT_FAILURE, InputFileError, SpeccError, UsageError
from ..ir import Layer, Node
from ..shapes import shape_text

# The exporter's own operator implementations are written for opset 18; any
# other opset goes through ONNX's version converter. onnxruntime runs 18 since 1.14.
DEFAULT_OPSET = 18
# Largest |onnxruntime - torch| an export may show, times max(1, the largest |torch output|): float32
# rounding grows with the values, and a correct export of an untrained ResNet-50 (logits in the hundreds)
# differs by more than 1e-4 in absolute terms.
TOLERANCE = 1e-4
CHECK_BATCHES = (1, 5)  # batch 1 proves the batch axis did not get fixed at the example's size
_EXAMPLE_BATCH = 2  # the exporter turns a batch of 1 into a constant


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


def export(spec: str | Path | Net, output: str | Path, weights: str | Path | None = None, opset: int = DEFAULT_OPSET) -> Exported:
    """Write `spec` (a .cnn path or a loaded Net) as one ONNX file at `output`, checked against torch."""
    import torch

    output = Path(output)
    if not output.parent.is_dir():
        raise UsageError(f"cannot write {output}: there is no folder {output.parent}")
    if output.exists() and not output.is_file():  # the file is written beside it and renamed over it
        raise UsageError(f"cannot write {output}: it is not a regular file", hint="name a file, e.g. -o net.onnx")
    net = spec if isinstance(spec, Net) else load(spec)
    report = net.check()
    model = net.to_torch().eval()
    trained = _load_weights(model, Path(weights), net) if weights is not None else {}
    metadata = _metadata(net, report.output_shape, weights, trained)
    tmp = output.with_name(f"{output.name}.tmp-{os.getpid()}")
    try:
        proto = _to_onnx(model, net, opset, metadata)
        _save(proto, tmp)
        with torch.no_grad():
            compared = {batch: _compare(model, tmp, (batch, *net.input_shape)) for batch in CHECK_BATCHES}
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
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    size = output.stat().st_size
    return Exported(output, opset, len(proto.graph.node), size, Path(weights) if weights else None, diffs, allowed, metadata)


def tolerance(largest_output: float) -> float:
    """The largest |onnxruntime - torch| allowed where torch's outputs reach `largest_output` in absolute value."""
    return TOLERANCE * max(1.0, largest_output)


# --- weights and metadata ----------------------------------------------------


def _load_weights(model, path: Path, net: Net) -> dict[str, str]:
    """Load `path` into `model`, or say which tensors do not fit; return the file's metadata."""
    from ..runners.checkpoint import load as load_checkpoint
    from ..runners.evaluate import refuse_non_finite

    tensors, meta = load_checkpoint(path)
    refuse_non_finite(tensors, path)  # else onnxruntime and torch "disagree by nan", which blames the exporter
    expected = model.state_dict()
    missing = [name for name in expected if name not in tensors]
    unexpected = [name for name in tensors if name not in expected]
    wrong = [
        f"{name} is {_dims(tensors[name].shape)} in the file but {_dims(t.shape)} in the spec"
        for name, t in expected.items()
        if name in tensors and tensors[name].shape != t.shape
    ]
    problems = [f"missing: {_few(missing)}"] if missing else []
    problems += [f"not in the spec: {_few(unexpected)}"] if unexpected else []
    problems += [f"wrong shape: {_few(wrong)}"] if wrong else []
    if problems:
        trained_for = meta.get("specc.network")
        hint = f"these weights were trained for network {trained_for!r}" if trained_for and trained_for != net.name else None
        raise InputFileError(
            f"{path} does not fit {net.source.path}: " + "; ".join(problems),
            hint=hint or "export with the spec the weights were trained from",
        )
    model.load_state_dict(tensors)
    return meta


def _dims(shape) -> str:
    return shape_text(shape) or "a scalar"


def _few(items: list[str], shown: int = 4) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def _metadata(net: Net, output_shape, weights: str | Path | None, trained: dict[str, str]) -> dict[str, str]:
    """The ONNX metadata: the trained file's values where it has them, neutral defaults where not."""
    channels = net.input_shape[0]
    shape = tuple(output_shape or ())
    ends = _final_activation(net.network.body)
    task = trained.get("specc.task") or task_of_spec(shape, ends)
    if task not in TASKS:
        _damaged(str(weights), "task", f"one of {', '.join(TASKS)}", trained)
    names = name_count(task, shape)
    classes = [str(i) for i in range(names)] if names else []
    defaults = {"classes": classes, "mean": [0.0] * channels, "std": [1.0] * channels, "input_shape": list(net.input_shape)}
    values = defaults | read_metadata(trained, str(weights))  # types here; whether they fit this spec below
    if values["input_shape"] != list(net.input_shape):
        raise InputFileError(
            f"{weights} was trained on inputs of {_dims(values['input_shape'])}, but the spec takes {_dims(net.input_shape)}",
            hint="export with the spec the weights were trained from",
        )
    for key in ("mean", "std"):
        if len(values[key]) != channels:
            raise InputFileError(f"{weights}: specc.{key} has {len(values[key])} values, but the input has {channels} channels")
    if classes and len(values["classes"]) != len(classes):
        outputs = f"{task} network with {_dims(shape)} outputs" if task != "classes" else f"network has {shape[0]} outputs"
        raise InputFileError(f"{weights} names {len(values['classes'])} classes, but the {outputs} takes {len(classes)}")
    meta = {f"specc.{key}": json.dumps(value) for key, value in values.items()}
    meta |= {
        "specc.version": __version__,
        "specc.network": net.name,
        "specc.spec": net.source.text,
        "specc.task": task,
        "specc.output": output_kind(task, ends),
        "specc.weights": Path(weights).name if weights else "random",
    }
    if "specc.epoch" in trained:
        meta["specc.epoch"] = trained["specc.epoch"]
    return meta


# --- the task: what the output means --------------------------------------------

# specc.task in the ONNX file: what predict makes of the output. Train's Task.kind, with `pixels` said for a user.
TASKS = ("classes", "binary", "multilabel", "regression", "segmentation")
# specc.output: whether the graph ends in its softmax or sigmoid (probabilities), or not (logits); values for regression.
OUTPUTS = ("probabilities", "logits", "values")


def task_name(kind: str) -> str:
    """specc.task for a training Task.kind."""
    return {"pixels": "segmentation"}.get(kind, kind)


def task_of_spec(shape: tuple[int, ...], ends: str | None) -> str:
    """The task of a spec alone, as `losses.choose` picks it for integer class labels: weights of a run say it instead."""
    if len(shape) > 1:
        return "segmentation"
    if ends == "sigmoid":
        return "binary" if shape == (1,) else "multilabel"
    return "binary" if shape == (1,) and ends is None else "classes"


def output_kind(task: str, ends: str | None) -> str:
    if task == "regression":
        return "values"
    return "probabilities" if ends in ("softmax", "sigmoid") else "logits"


def name_count(task: str, shape: tuple[int, ...]) -> int:
    """How many names specc.classes holds for an output of `shape` (without the batch): two for one score or one channel."""
    if not shape:
        return 0
    if task == "binary" or (task == "segmentation" and shape[0] == 1):
        return 2
    if task == "segmentation":
        return shape[0] if len(shape) > 1 else 0
    return shape[0] if len(shape) == 1 else 0  # classes, labels or values of a vector; a map of values has no names


# --- metadata, as every reader takes it ------------------------------------------


def read_metadata(meta: dict[str, str], where: str, output_shape: tuple[int, ...] | None = None) -> dict:
    """The specc.* entries of an ONNX file's or a weights file's metadata, parsed and checked.

    The one place that reads them, for predict, eval and export alike: a file written elsewhere, or
    damaged, is refused here with the entry named, not later with a traceback. Keys absent stay absent
    (the caller decides what it needs); `output_shape` (without the batch), where known, says how many
    class names there must be for the file's task.
    """
    if "specc.task" in meta and meta["specc.task"] not in TASKS:
        _damaged(where, "task", f"one of {', '.join(TASKS)}", meta)
    outputs = name_count(meta.get("specc.task", "classes"), output_shape) if output_shape else None
    values = {key: _entry(meta, f"specc.{key}", where) for key in ("input_shape", "classes", "mean", "std") if f"specc.{key}" in meta}
    shape = values.get("input_shape")
    if shape is not None and not (isinstance(shape, list) and 1 <= len(shape) <= 4 and all(_count(d) for d in shape)):
        _damaged(where, "input_shape", "a list of 1 to 4 sizes such as [1, 28, 28]", meta)
    classes = values.get("classes")
    if classes is not None and not (isinstance(classes, list) and all(map(_class_name, classes))):
        _damaged(where, "classes", "a list of class names", meta)
    if classes is not None:
        values["classes"] = [str(c) for c in classes]
        if outputs and len(classes) != outputs:
            _damaged(where, "classes", f"one name per output of the network ({outputs}), but it has {len(classes)}", meta)
    for key in ("mean", "std"):
        numbers = values.get(key)
        if numbers is None:
            continue
        if not (isinstance(numbers, list) and numbers and all(_finite(v) for v in numbers)):
            _damaged(where, key, "a list of finite numbers, one per input channel", meta)
        if shape is not None and len(numbers) != shape[0]:
            _damaged(where, key, f"one number per input channel ({shape[0]}), but it has {len(numbers)}", meta)
    if any(v <= 0 for v in values.get("std", [])):
        _damaged(where, "std", "positive numbers (each channel is divided by its standard deviation)", meta)
    if "specc.output" in meta and meta["specc.output"] not in OUTPUTS:
        _damaged(where, "output", "'probabilities', 'logits' or 'values'", meta)
    return values


def _entry(meta: dict[str, str], key: str, where: str):
    try:
        return json.loads(meta[key])
    except (ValueError, RecursionError):
        raise InputFileError(f"{where}: the metadata {key} is not JSON: {meta[key][:80]!r}", hint=_REEXPORT) from None


def _class_name(value) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _damaged(where: str, key: str, expected: str, meta: dict[str, str]) -> None:
    found = meta.get(f"specc.{key}", "")[:80]
    raise InputFileError(f"{where}: the metadata specc.{key} must be {expected}; it is {found!r}", hint=_REEXPORT)


_REEXPORT = "the file was damaged or not written by specc: train or export it again with specc"


def _final_activation(nodes: list[Node]) -> str | None:
    """softmax or sigmoid, if it is the last thing the network does (then in the graph: its outputs are probabilities)."""
    if not nodes:
        return None
    last = nodes[-1]
    if isinstance(last, Layer):
        return last.kind.name if last.kind.name in ("softmax", "sigmoid") else None
    return _final_activation(last.children) if last.kind in ("block", "repeat", "seq") else None


# --- the export itself ---------------------------------------------------------


def _to_onnx(model, net: Net, opset: int, metadata: dict[str, str]):
    """The ModelProto of `model`, nodes named after the spec's layers, metadata attached."""
    import onnx
    import torch

    example = torch.randn(_EXAMPLE_BATCH, *net.input_shape)
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
        raise SpeccError(f"torch.onnx.export failed on {net.name}: {err}", exit_code=EXIT_FAILURE) from err
    proto = program.model_proto
    written = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    if written != opset:
        raise SpeccError(
            f"torch.onnx.export cannot write {net.name} in opset {opset}: ONNX's version converter could not take it "
            f"from opset {written}, the one the exporter writes",
            hint=f"use --opset {written}, or an opset nearer to it",
            exit_code=EXIT_FAILURE,
        )
    _name_nodes(proto.graph, set(model.state_dict()))
    onnx.helper.set_model_props(proto, metadata)
    proto.doc_string = f"{net.name}, exported by specc {__version__} from {Path(net.source.path).name}"
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


def _name_nodes(graph, parameters: set[str]) -> None:
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


def _save(proto, path: Path) -> None:
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
