"""`specc import module:callable`: an nn.Module the callable builds, exported by torch.onnx.export (the
torch.export-based exporter specc's own export uses, nodes named after their modules) into a
temporary file and imported from there, so a PyTorch model and an ONNX file come back alike.

The exporter folds each batchnorm into the conv before it and leaves out a bias that is all zeros
(torchvision's VGG starts so). The graph computes the same, but the module says more: so each layer
takes its tensors, its bias and its batchnorm's eps and momentum from the module it came from
(`Layer.source`), and the spec has every parameter the module has. The result is run against the
module; were the module's state not to fit, the graph's own tensors are kept.
"""

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
    if input_shape is None:
        raise InputFileError(f"{target}: a PyTorch model has no input size of its own", hint="give it with --input, e.g. --input 3x224x224")
    return import_torch(_build(target), input_shape, name or target.rpartition(":")[2], target)


def import_torch(model, input_shape: tuple[int, ...], name: str, origin: str):
    """The `Imported` of an nn.Module in eval mode, named `name`, its first line saying `origin`."""
    from ..backends import onnx as onnx_backend
    from .writer import network_name

    with tempfile.TemporaryDirectory(prefix="specc-import-") as folder:
        path = Path(folder) / f"{network_name(name)}.onnx"
        proto = onnx_backend.convert(model, input_shape, network_name(name), onnx_backend.DEFAULT_OPSET, {"specc.output": "output"}, origin)
        path.write_bytes(proto.SerializeToString())
        return import_exported(model, path, input_shape, name, origin)


def import_exported(model, path: Path, input_shape: tuple[int, ...], name: str, origin: str):
    """`model` imported from `path`, its torch.onnx.export: the graph's structure, the module's state."""
    from . import from_graph
    from .graph import OnnxGraph, load
    from .verify import agrees, check_agrees, torch_reference
    from .writer import network_name

    graph = OnnxGraph(load(path))
    spec_name, reference = network_name(name), torch_reference(model)
    imported = from_graph(graph, input_shape, spec_name, origin, carry=lambda body: carry_state(model, body))
    if not agrees(imported, reference, input_shape):
        imported = from_graph(graph, input_shape, spec_name, origin)
        check_agrees(imported, reference, input_shape, origin)
    return imported


_BIASED = {"conv", "deconv", "fc"}


def carry_state(model, body) -> None:
    """Each layer's tensors from the module it came from, where that module holds the same roles
    (plus a bias the exporter left out) of the same sizes."""
    from .ops import batchnorm_args
    from .tree import layers_in_order

    modules = dict(model.named_modules())
    for layer in layers_in_order(body):
        module = modules.get(layer.source) if layer.source and layer.tensors else None
        if module is None:
            continue
        own = dict([*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)])
        own = {role: t.detach().numpy() for role, t in own.items() if t is not None and role != "num_batches_tracked"}
        dropped = {"bias"} if layer.kind in _BIASED and layer.args.get("bias") is False else set()
        if set(own) != set(layer.tensors) | (dropped & set(own)):
            continue
        if any(own[role].size != array.size for role, array in layer.tensors.items()):
            continue
        layer.tensors = {role: own[role].reshape(layer.tensors[role].shape if role in layer.tensors else -1) for role in own}
        if "bias" in own and "bias" in dropped:
            del layer.args["bias"]
        if layer.kind == "batchnorm" and getattr(module, "momentum", None) is not None:
            layer.args = batchnorm_args(module.eps, module.momentum)


def _build(target: str):
    """The module `target` names, called without arguments and put in eval mode."""
    import torch

    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # an import runs arbitrary code: anything it raises means the module is not there to use
        absent = isinstance(err, ModuleNotFoundError) and f"{module_name}.".startswith(f"{err.name}.")
        # Installed but failing: pip's torchvision 0.28 beside a CPU torch does, its CUDA extension unable to load.
        broken = f"{module_name} is installed but failed to import; one built for another torch than yours ({torch.__version__}) does"
        hint = "name an installed module, e.g. torchvision.models:resnet18" if absent else broken
        raise InputFileError(f"cannot import {module_name}: {err.__class__.__name__}: {err}", hint=hint) from None
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
