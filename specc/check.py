"""Shape checking: walk the network tree, work out every shape and count.

Pure integer arithmetic (see shapes.py and layers.py); torch is never
imported. A layer that cannot take its input is reported, and the check goes
on with the shape the layer would give all the same where there is one (fc's
K outputs, a residual's body), so that independent mistakes further on are
reported in the same run. Where there is none (a filter larger than its
input, a statement the expander could not build) the output is unknown and
the layers after it are not checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import shapes
from .errors import Diagnostic, Diagnostics
from .ir import Group, Layer, Network, Node, Shape
from .layers import ShapeError

BYTES_PER_VALUE = 4  # float32
TILE_HINT = "pad, or pick F and S so that (W − F + 2P) is a multiple of S; --strict makes this an error"


@dataclass
class Flow:
    """What moves from one layer to the next: the shape, and receptive field and jump."""

    shape: Shape | None
    rf: int = 1
    jump: int = 1


@dataclass
class Row:
    """One line of the check table: a layer, or a group with its summed figures."""

    name: str
    kind: str
    line: int
    depth: int
    output_shape: Shape | None
    params: int
    macs: int
    receptive_field: int
    formula: str | None = None
    frozen: bool = False
    is_group: bool = False


@dataclass
class Report:
    network: str
    input_shape: Shape
    output_shape: Shape | None
    rows: list[Row]
    warnings: list[Diagnostic] = field(default_factory=list)

    @property
    def layers(self) -> list[Row]:
        return [r for r in self.rows if not r.is_group]

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.layers)

    @property
    def frozen_params(self) -> int:
        return sum(r.params for r in self.layers if r.frozen)

    @property
    def trainable_params(self) -> int:
        return self.total_params - self.frozen_params

    @property
    def total_macs(self) -> int:
        return sum(r.macs for r in self.layers)

    @property
    def param_mb(self) -> float:
        return self.total_params * BYTES_PER_VALUE / 1e6

    @property
    def activation_mb(self) -> float:
        """Forward activations of one sample, every layer's output kept (as for training)."""
        values = sum(shapes.prod(r.output_shape) for r in self.layers if r.output_shape)
        return values * BYTES_PER_VALUE / 1e6


def check(network: Network, diagnostics: Diagnostics) -> Report:
    """The check stage: fill in the network's shapes and counts, every mistake into `diagnostics`.

    The report's rows are worth reading only where no error was found.
    """
    flow = _Checker(diagnostics).sequence(network.body, Flow(network.input_shape))
    return Report(network.name, network.input_shape, flow.shape, list(_rows(network.body, 0)))


class _Checker:
    def __init__(self, diagnostics: Diagnostics):
        self.diagnostics = diagnostics

    def sequence(self, nodes: list[Node], flow: Flow) -> Flow:
        for node in nodes:
            flow = self.layer(node, flow) if isinstance(node, Layer) else self.group(node, flow)
        return flow

    def layer(self, layer: Layer, flow: Flow) -> Flow:
        layer.in_shape = flow.shape
        if flow.shape is None:
            return flow
        try:
            out = layer.kind.infer(layer.args, flow.shape)
        except ShapeError as err:
            span = layer.arg_spans.get(err.field, layer.span) if err.field else layer.span
            self.diagnostics.error(err.message, span, err.hint, layer.calls)
            layer.out_shape = err.recover
            return Flow(err.recover, flow.rf, flow.jump)
        if out.warning:
            self.diagnostics.warning(out.warning, layer.span, TILE_HINT, layer.calls)
        layer.out_shape, layer.params, layer.macs, layer.formula, layer.pads = out.shape, out.params, out.macs, out.formula, out.pads
        rf, jump = flow.rf, flow.jump
        if out.window:
            rf, jump = shapes.receptive_field(rf, jump, *out.window)
        elif out.sees_whole_map:
            rf = shapes.whole_map(rf, jump, flow.shape[1:])
        layer.receptive_field = math.ceil(rf)  # a fraction of an input pixel past an upsampling layer
        return Flow(out.shape, rf, jump)

    def group(self, group: Group, flow: Flow) -> Flow:
        group.in_shape = flow.shape
        if group.failed:
            out = self.inside_failed(group, flow)
        elif group.kind == "residual":
            out = self.residual(group, flow)
        elif group.kind == "concat":
            out = self.concat(group, flow)
        elif group.kind == "gate":
            out = self.gate(group, flow)
        else:
            out = self.sequence(group.children, flow)
        group.out_shape, group.receptive_field = out.shape, math.ceil(out.rf)
        return out

    def inside_failed(self, group: Group, flow: Flow) -> Flow:
        """A group the expander reported (`residual shortcut=projct`): its layers, not how they join."""
        if group.kind == "concat":
            self.branches(group, flow)
        else:
            self.sequence(group.children, flow)
        return Flow(None)

    def residual(self, group: Group, flow: Flow) -> Flow:
        group.projects = False
        body = self.sequence(group.children, flow)
        if flow.shape is None or body.shape is None:
            return Flow(None)
        if group.shortcut == "identity" or (group.shortcut == "auto" and body.shape == flow.shape):
            if body.shape != flow.shape:
                self.diagnostics.error(
                    f"residual branches disagree: the body gives {shapes.shape_text(body.shape)} "
                    f"but the identity shortcut gives {shapes.shape_text(flow.shape)}",
                    group.span,
                    "write `residual shortcut=project` (a 1×1 conv with the right stride, then batchnorm) "
                    "or `residual shortcut=auto` to project only where shapes differ",
                    group.calls,
                )
                return Flow(body.shape, body.rf, body.jump)
            return Flow(body.shape, max(body.rf, flow.rf), body.jump)
        return self.projection(group, flow, body)

    def projection(self, group: Group, flow: Flow, body: Flow) -> Flow:
        """The torchvision shortcut: 1×1 conv with the body's stride, then batchnorm."""
        stride = max(body.jump // flow.jump, 1)
        conv = group.projection[0]
        conv.args["K"], conv.args["S"] = body.shape[0], stride
        group.projects = True
        out = self.sequence(group.shortcut_layers, flow)
        if out.shape != body.shape:
            self.diagnostics.error(
                f"residual branches disagree: the body gives {shapes.shape_text(body.shape)} but the projection "
                f"shortcut (1×1 conv, stride {stride}) gives {shapes.shape_text(out.shape)}",
                group.span,
                "a projection can change channels and stride, not other sizes; make the body keep (W − F + 2P)/S exact",
                group.calls,
            )
            return Flow(None)
        return Flow(body.shape, max(body.rf, out.rf), body.jump)

    def gate(self, group: Group, flow: Flow) -> Flow:
        """x times its body's output (squeeze-and-excitation): the body must broadcast against x."""
        body = self.sequence(group.children, flow)
        if flow.shape is None or body.shape is None:
            return Flow(None)
        x, scale = flow.shape, body.shape
        if len(scale) != len(x) or any(s not in (1, c) for s, c in zip(scale, x, strict=True)):
            self.diagnostics.error(
                f"the gate's body gives {shapes.shape_text(scale)}, which cannot multiply its input {shapes.shape_text(x)}",
                group.span,
                _gate_hint(x, scale),
                group.calls,
            )
        return Flow(x, max(body.rf, flow.rf), flow.jump)

    def branches(self, group: Group, flow: Flow) -> list[Flow]:
        if group.split and flow.shape is not None and group.children:  # an empty body is reported already
            flow = self.split(group, flow)
        return [self.layer(child, flow) if isinstance(child, Layer) else self.group(child, flow) for child in group.children]

    def split(self, group: Group, flow: Flow) -> Flow:
        """What each branch of `concat split` takes: its equal slice of the channels."""
        c, n = flow.shape[0], len(group.children)
        if c % n:
            self.diagnostics.error(
                f"concat split cannot share {c} channels equally among {n} branches",
                group.span,
                f"give it a number of branches that divides {c}, or make the layer before give a multiple of {n} channels",
                group.calls,
            )
            return Flow(None)
        return Flow((c // n, *flow.shape[1:]), flow.rf, flow.jump)

    def concat(self, group: Group, flow: Flow) -> Flow:
        outs = self.branches(group, flow)
        if flow.shape is None or any(o.shape is None for o in outs):
            return Flow(None)
        first = outs[0].shape
        if any(len(o.shape) != len(first) or o.shape[1:] != first[1:] for o in outs):
            shown = ", ".join(shapes.shape_text(o.shape) for o in outs)
            notes = [
                (f"this branch gives {shapes.shape_text(o.shape)}", child.span)
                for child, o in zip(group.children, outs, strict=True)
                if o.shape[1:] != first[1:] or len(o.shape) != len(first)
            ]
            self.diagnostics.error(
                f"concat branches differ in size: {shown}",
                group.span,
                "concat joins channels; every branch must keep the same spatial size (pad, or match strides)",
                group.calls,
                notes=notes,
            )
            return Flow(None)
        channels = sum(o.shape[0] for o in outs)
        return Flow((channels, *first[1:]), max(o.rf for o in outs), max(o.jump for o in outs))


def _gate_hint(x: Shape, scale: Shape) -> str:
    if len(scale) != len(x):
        return f"the body must keep the input's {len(x)} axes: 1×1 convs, not flatten and fc, as in squeeze-and-excitation"
    if scale[0] not in (1, x[0]):
        return f"the body's last layer must give {x[0]} channels, the input's (or 1, one weight for all channels)"
    return "each of the body's spatial sizes must be 1 (as after `pool avg global`) or the input's"


def shown(row_depth: int, depth: int | None) -> bool:
    """Whether `--depth` shows what is nested `row_depth` groups deep; deeper layers fold into their group's row."""
    return depth is None or row_depth <= depth


def _rows(nodes: list[Node], depth: int):
    for node in nodes:
        yield row(node, depth)
        if isinstance(node, Layer):
            continue
        shortcut = [row(layer, depth + 1) for layer in node.shortcut_layers]
        yield from shortcut if node.shortcut_first else ()
        yield from _rows(node.children, depth + 1)
        yield from () if node.shortcut_first else shortcut


def row(node: Node, depth: int) -> Row:
    """The table's row for one layer, or for a group with its summed figures, nested `depth` deep."""
    if isinstance(node, Layer):
        return Row(
            node.name,
            node.kind.title(node.args),
            node.line,
            depth,
            node.out_shape,
            node.params,
            node.macs,
            node.receptive_field,
            node.formula,
            node.frozen,
        )
    return Row(
        node.name if node.scoped else "",
        node.title,
        node.line,
        depth,
        node.out_shape,
        node.params,
        node.macs,
        node.receptive_field,
        frozen=node.frozen,
        is_group=True,
    )
