"""`specc import`: an ONNX graph back to a `.cnn` spec, and its initialisers to specc's weights.

graph.py walks the graph (groups where branches meet), ops.py converts one operator at a time,
patterns.py the patterns of several nodes (channels-last layers, channel shuffle, concat split),
units.py finds where each source module stands in the tree and blocks.py makes its
repeated units blocks, bottom-up, writer.py writes the spec and names the tensors; pytorch.py brings
a PyTorch model in through an ONNX export, verify.py runs the import against its source. Nothing is
written unless the spec checks and computes what the source computes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputFileError, SpeccError, UsageError
from ..shapes import shape_text
from .graph import OnnxGraph, Walker, load
from .ops import convert
from .patterns import channels_last  # noqa: F401  (registers the converters of several-node patterns)
from .units import module_classes
from .verify import check_agrees, onnxruntime_reference
from .writer import legal_names, named_tensors, network_name, spec_text


@dataclass
class Imported:
    text: str  # the spec, checked and formatted
    net: object  # the specc.Net it parses to
    tensors: dict  # parameter name -> torch tensor, as net.to_torch().state_dict() names them
    # What a file `specc export` wrote says of its inputs and outputs (specc.task, classes, mean, std,
    # input_shape): carried into the weights, so that eval, export and predict prepare inputs and name
    # outputs as the source did, not with the data's statistics and numbered classes.
    metadata: dict[str, str] = field(default_factory=dict)


def import_onnx(
    path: str | Path, name: str | None = None, input_shape: tuple[int, ...] | None = None, origin: str | None = None
) -> Imported:
    """`origin`: what the spec's first line says it came from (the file's name unless given).

    The imported network is run against onnxruntime on the file before it is returned.
    """
    path = Path(path)
    model = load(path)
    graph = OnnxGraph(model)
    shape = _input_shape(graph, input_shape)
    imported = from_graph(graph, shape, network_name(name or path.stem), origin or path.name)
    check_agrees(imported, onnxruntime_reference(path), shape, path.name, batch=graph.shapes[graph.input][0])
    imported.metadata = _carried_metadata(model, shape, imported.net.check().output_shape, str(path))
    return imported


_CARRIED = ("specc.task", "specc.classes", "specc.mean", "specc.std", "specc.input_shape")


def _carried_metadata(model, shape: tuple[int, ...], output_shape, where: str) -> dict[str, str]:
    """The file's specc.* entries that the weights keep, checked as eval and predict check them."""
    from ..runners.metadata import read_metadata

    props = {p.key: p.value for p in model.metadata_props}
    meta = {key: props[key] for key in _CARRIED if key in props}
    values = read_metadata(meta, where, output_shape)  # a damaged entry is named here, before anything is written
    if values.get("input_shape", list(shape)) != list(shape):
        meta.pop("specc.input_shape")  # --input gave a symbolic graph another size; mean and std still hold per channel
    return meta


def from_graph(graph: OnnxGraph, shape: tuple[int, ...], spec_name: str, origin: str, carry=None) -> Imported:
    """The spec of `graph`, with blocks where they give the same rows; `carry(body)` may replace the
    graph's tensors (and the arguments they imply) with the source's own before the spec is written."""
    body = Walker(graph, convert).walk(graph.input, graph.output)
    if carry is not None:
        carry(body)
    legal_names(body)
    for named in (True, False):  # a graph's names could still clash with specc's own; then none are kept
        try:
            text, net = _checked(spec_text(spec_name, shape, body, origin, named, blocks=False), spec_name)
            break
        except SpeccError:
            if not named:
                raise
    try:  # the same network with its repeated units as blocks, kept only where it is the same row for row
        blocked, blocked_net = _checked(spec_text(spec_name, shape, body, origin, named, classes=module_classes(graph.nodes)), spec_name)
        if _rows(blocked_net) == _rows(net):
            text, net = blocked, blocked_net
    except SpeccError:
        pass
    return Imported(text, net, named_tensors(net, body))


def _checked(text: str, spec_name: str):
    from ..api import loads
    from ..fmt import format_text

    text = format_text(text)
    net = loads(text, f"{spec_name}.cnn")
    net.check()
    return text, net


def _rows(net) -> list[tuple]:
    return [(layer.kind.name, layer.out_shape, layer.params, layer.macs, layer.receptive_field) for layer in net.network.layers()]


def _input_shape(graph: OnnxGraph, given: tuple[int, ...] | None) -> tuple[int, ...]:
    dims = graph.shapes[graph.input][1:]
    if given is not None:
        if len(given) != len(dims) or any(d is not None and d != g for d, g in zip(dims, given, strict=True)):
            raise UsageError(f"--input {'x'.join(map(str, given))} does not fit the graph's input {shape_text(tuple(dims))}")
        return given
    if None in dims or not dims:
        raise InputFileError("the graph's input size is symbolic", hint="give it with --input, e.g. --input 3x224x224")
    return tuple(dims)


def write(imported: Imported, spec_path: str | Path, weights_path: str | Path | None = None) -> None:
    """The spec, and the weights if asked for, each through a `.partial` file and a rename."""
    from ..runners.checkpoint import save_atomic

    if weights_path is not None:
        save_atomic(Path(weights_path), imported.tensors, {"specc.network": imported.net.name} | imported.metadata)
    spec_path = Path(spec_path)
    partial = spec_path.with_name(spec_path.name + ".partial")
    try:
        partial.write_text(imported.text, encoding="utf-8")
        os.replace(partial, spec_path)
    finally:
        partial.unlink(missing_ok=True)
