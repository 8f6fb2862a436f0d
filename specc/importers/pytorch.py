"""`specc import module:callable`: an nn.Module the callable builds, exported by torch.onnx.export (the
torch.export-based exporter specc's own export uses, nodes named after their modules) into a
temporary file and imported from there, so a PyTorch model and an ONNX file come back alike."""

from __future__ import annotations

import importlib
import re
import tempfile
from pathlib import Path

from ..errors import EXIT_FAILURE, InputFileError, SpeccError

TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")  # `torchvision.models:resnet18`


def is_target(model: str) -> bool:
    """`module:callable` that is not a file: `C:net.onnx` on Windows is a file, and has a dot after the colon."""
    return bool(TARGET.match(model)) and not Path(model).exists()


def import_module(target: str, input_shape: tuple[int, ...] | None, name: str | None = None):
    """The `Imported` of the model `target` builds, seen at `input_shape` (C x H x W)."""
    from ..backends import onnx as onnx_backend
    from . import import_onnx

    if input_shape is None:
        raise InputFileError(f"{target}: a PyTorch model has no input size of its own", hint="give it with --input, e.g. --input 3x224x224")
    model = _build(target)
    callable_name = target.rpartition(":")[2]
    with tempfile.TemporaryDirectory(prefix="specc-import-") as folder:
        path = Path(folder) / f"{callable_name}.onnx"
        proto = onnx_backend.convert(model, input_shape, callable_name, onnx_backend.DEFAULT_OPSET, {"specc.output": "output"}, target)
        path.write_bytes(proto.SerializeToString())
        return import_onnx(path, name or callable_name, input_shape, origin=target)


def _build(target: str):
    """The module `target` names, called without arguments and put in eval mode."""
    import torch

    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # an import runs arbitrary code: anything it raises means the module is not there to use
        raise InputFileError(
            f"cannot import {module_name}: {err}", hint="name an installed module, e.g. torchvision.models:resnet18"
        ) from None
    factory = getattr(module, attribute, None)
    if factory is None:  # `torchvision:resnet18`: the package keeps its models in .models
        models = _submodule(module_name, "models")
        factory = getattr(models, attribute, None) if models else None
    if not callable(factory):
        raise InputFileError(f"{module_name} has no callable {attribute}", hint="write module:callable, e.g. torchvision.models:resnet18")
    try:
        model = factory()
    except Exception as err:  # the user's code: its failure is reported, not a traceback
        raise SpeccError(f"{target}() failed: {err.__class__.__name__}: {err}", exit_code=EXIT_FAILURE) from None
    if not isinstance(model, torch.nn.Module):
        raise InputFileError(f"{target}() gave a {type(model).__name__}, not a torch.nn.Module")
    return model.eval()


def _submodule(package: str, name: str):
    try:
        return importlib.import_module(f"{package}.{name}")
    except ImportError:
        return None
