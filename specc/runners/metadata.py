"""The specc.* metadata of a weights or ONNX file: what the output means, and how inputs are prepared.

`specc train` writes it into its safetensors files, `specc export` carries it into the ONNX file
(the spec text and version added), and `specc eval`, `export` and `predict` read it back through
`read_metadata`, the one place that parses and checks it. Torch-free: predict imports it.

| key               | value                                                                     |
|-------------------|---------------------------------------------------------------------------|
| specc.task        | classes, binary, multilabel, regression or segmentation: how to read out  |
| specc.output      | probabilities (the graph ends in its softmax or sigmoid), logits, values  |
| specc.classes     | JSON list of class (or output) names                                      |
| specc.input_shape | JSON list, the sample shape without the batch                             |
| specc.mean, std   | JSON lists, one number per input channel: x is fed as (x - mean) / std    |
| specc.network, spec, version, weights, epoch | where the file came from                       |
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..errors import InputFileError
from ..shapes import shape_text

if TYPE_CHECKING:
    from ..api import Net


def for_export(net: Net, output_shape, weights: str | Path | None, trained: dict[str, str]) -> dict[str, str]:
    """The ONNX metadata: the trained file's values where it has them, neutral defaults where not."""
    channels = net.input_shape[0]
    shape = tuple(output_shape or ())
    ends = net.network.final_activation
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


def _dims(shape) -> str:
    return shape_text(tuple(shape)) or "a scalar"
