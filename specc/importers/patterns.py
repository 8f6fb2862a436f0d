"""Patterns of several ONNX nodes that are one spec layer or group, registered with ops' converters.

- A channels-last region, as ConvNeXt writes its layernorm and MLP: Transpose to N x ... x C,
  layers on the last axis (LayerNormalization, a Linear as MatMul + Add, activations), Transpose
  back. Each layer inside is its channel-wise spec layer: layernorm, a 1x1 conv, the activation.
- A Mul by a constant shaped C x 1 x 1: `layerscale`.
- Channel shuffle: Reshape to N x g x C/g x ..., swap those two axes, Reshape back: `shuffle g`.
- A Split of the channels into equal parts whose branches meet at one Concat: `concat split`.
"""

from __future__ import annotations

import math

import numpy as np

from .graph import FORK_PATTERNS, OnnxGraph, Walker, axis_of, unexpressible
from .ops import CONVERTERS, attrs, convert, converts, layer_name, matmul, number, only_user
from .tree import Group, Layer

_LAYERSCALE_INIT = 1e-6  # LayerScale's default `init`
# Activations work on any layout: inside a channels-last region they are what they are outside it.
_ELEMENTWISE = ("Relu", "Sigmoid", "Tanh", "Gelu", "HardSigmoid", "HardSwish", "LeakyRelu", "Elu", "Clip", "Identity", "Dropout")


# --- channels-last regions ----------------------------------------------------


@converts("Transpose")
def channels_last(node, g: OnnxGraph):
    """Transpose(0, 2, ..., 1), layers on the last axis, Transpose(0, r-1, 1, ...): those layers, channel-wise."""
    perm = [int(p) for p in attrs(node).get("perm", [])]
    rank = len(perm)
    if rank < 3 or perm != [0, *range(2, rank), 1]:
        raise unexpressible(
            node, f"Transpose with perm={perm} is not a specc layer (only channels to the last axis, around layers on the channels)"
        )
    back = _transpose_back(node, g, [0, rank - 1, *range(1, rank - 1)])
    return Walker(g, _convert_on_last_axis).walk(node.output[0], back.input[0]), back.output[0]


def _transpose_back(node, g: OnnxGraph, inverse: list[int]):
    """The one Transpose by `inverse` that every path from `node` meets: where the channels-last region ends."""
    seen, todo, backs = set(), [node.output[0]], {}
    while todo:
        tensor = todo.pop()
        if tensor == g.output:
            raise unexpressible(node, "Transpose to channels-last whose tensor never comes back to channels-first is not a specc layer")
        for user in g.consumers.get(tensor, []):
            if id(user) in seen:
                continue
            seen.add(id(user))
            if user.op_type == "Transpose" and [int(p) for p in attrs(user).get("perm", [])] == inverse:
                backs[id(user)] = user
            else:
                todo.extend(user.output)
    if len(backs) != 1:
        raise unexpressible(node, f"Transpose to channels-last that comes back through {len(backs)} Transposes is not a specc layer")
    return next(iter(backs.values()))


def _convert_on_last_axis(node, g: OnnxGraph):
    converter = _ON_LAST_AXIS.get(node.op_type) or (CONVERTERS[node.op_type] if node.op_type in _ELEMENTWISE else None)
    if converter is None:
        raise unexpressible(
            node,
            f"{node.op_type} on a channels-last tensor (between two Transposes) is not a specc layer; "
            "there specc reads layernorm, a Linear on the channels and activations",
        )
    return convert(node, g, converter)


def _layernorm_last_axis(node, g: OnnxGraph):
    rank = len(g.shapes.get(node.input[0], ()))
    axis = int(attrs(node).get("axis", -1))
    if not rank or axis % rank != rank - 1:
        raise unexpressible(node, f"LayerNormalization over axis {axis} of a channels-last rank-{rank} tensor is not over the channels")
    return _layernorm(node, g)


def _layernorm(node, g: OnnxGraph):
    """nn.LayerNorm's scale and shift; ones and zeros where it has none (elementwise_affine=False, bias=False)."""
    weight, bias = g.constant(node, 1), g.constant(node, 2)
    if weight is None or (len(node.input) > 2 and node.input[2] and bias is None):
        raise unexpressible(node, "LayerNormalization whose scale or shift is computed is not a specc layer")
    bias = bias if bias is not None else np.zeros_like(weight)
    eps = number(attrs(node).get("epsilon", 1e-5))
    return [Layer("layernorm", {"eps": eps} if eps != 1e-5 else {}, layer_name(node), {"weight": weight, "bias": bias})], node.output[0]


def _linear_on_channels(node, g: OnnxGraph):
    """nn.Linear on the last axis of a channels-last tensor: a 1x1 conv, its K x C weight as K x C x 1 x 1."""
    rank = len(g.shapes.get(node.input[0], ()))
    (fc,), tensor = matmul(node, g)
    weight = fc.tensors["weight"]
    tensors = fc.tensors | {"weight": weight.reshape(*weight.shape, *[1] * (rank - 2))}
    args = {"K": weight.shape[0], "F": 1} | ({"bias": False} if "bias" not in tensors else {})
    return [Layer("conv", args, fc.name, tensors)], tensor


_ON_LAST_AXIS = {"LayerNormalization": _layernorm_last_axis, "MatMul": _linear_on_channels}


@converts("LayerNormalization")
def layernorm_flat(node, g: OnnxGraph):
    """Over the features of a flat (N, C) vector; on a channels-first tensor only inside a channels-last region."""
    rank = len(g.shapes.get(node.input[0], ()))
    if rank != 2 or int(attrs(node).get("axis", -1)) % rank != 1:
        raise unexpressible(
            node, f"LayerNormalization over more than the channels of a rank-{rank} tensor is not specc's layernorm (over the channels)"
        )
    return _layernorm(node, g)


# --- per-channel factors and channel shuffle ------------------------------------


@converts("Mul")
def layerscale(node, g: OnnxGraph):
    """x · a constant shaped C x 1 x 1 (ConvNeXt's layer_scale): `layerscale`, its init where all factors are equal."""
    shape = g.shapes.get(node.output[0], ())
    scale = next((g.constants[name] for name in node.input if name in g.constants), None)
    wanted = (shape[1], *[1] * (len(shape) - 2)) if len(shape) > 1 else None
    if scale is None or wanted is None or tuple(scale.shape) != wanted:
        got = list(scale.shape) if scale is not None else "a computed tensor"
        raise unexpressible(node, f"Mul by {got} is not a specc layer (layerscale is one factor per channel, shaped C x 1 x 1)")
    values = np.unique(scale)
    init = number(values[0]) if len(values) == 1 else _LAYERSCALE_INIT
    return [Layer("layerscale", {"init": init} if init != _LAYERSCALE_INIT else {}, layer_name(node), {"scale": scale})], node.output[0]


_reshape = CONVERTERS["Reshape"]


@converts("Reshape")
def reshape(node, g: OnnxGraph):
    return _shuffle(node, g) or _restrided(node, g) or _reshape(node, g)


def _restrided(node, g: OnnxGraph):
    """Reshape to [-1], then a Gather of every element in order: the exporter's as_strided of a
    tensor whose layout torch changed (ConvNeXt's pool before its layernorm), the identity in ONNX.
    Its indices are constants, or come from the batch size: then computed at two sizes, they must be
    0, 1, 2, ... both times."""
    shape, before = g.constant(node, 1), g.shapes.get(node.input[0], ())
    gather = only_user(g, node.output[0], ("Gather",))
    if shape is None or [int(v) for v in shape] != [-1] or gather is None or gather.input[0] != node.output[0]:
        return None
    if int(attrs(gather).get("axis", 0)) != 0 or not before or None in before[1:]:
        return None
    name = gather.input[1]
    if name in g.constants:  # a graph exported at a fixed batch size
        found = [(np.asarray(g.constants[name]), before[0])]
    else:
        found = [(_size_value(g, name, batch), batch) for batch in (1, 3)] if name in g.sizes else []
    for indices, batch in found:
        if indices is None or indices.shape != (batch, *before[1:]) or not np.array_equal(indices.ravel(), np.arange(indices.size)):
            return None
    return ([], gather.output[0]) if found else None


def _size_value(g: OnnxGraph, tensor: str, batch: int):
    """The value of a tensor computed from the input's shape, for an input of `batch` samples (None where unknown)."""
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    dims = g.shapes.get(g.input, ())[1:]
    if None in dims:
        return None
    used = {name for node in g.size_nodes for name in node.input if name in g.constants}
    graph = helper.make_graph(
        g.size_nodes,
        "sizes",
        [helper.make_tensor_value_info(g.input, 1, None)],  # 1: float
        [helper.make_tensor_value_info(tensor, 0, None)],  # 0: any type
        [numpy_helper.from_array(np.asarray(g.constants[name]), name) for name in sorted(used)],
    )
    try:
        (value,) = ReferenceEvaluator(graph, opsets={"": g.opset}).run(None, {g.input: np.zeros((batch, *dims), np.float32)})
    except Exception:  # a size node that needs more than the input's shape: the pattern does not apply
        return None
    return np.asarray(value)


def _shuffle(node, g: OnnxGraph):
    """(N, C, ...) to (N, g, C/g, ...), Transpose(0, 2, 1, ...), Reshape to (N, C, ...): torchvision's channel_shuffle."""
    shape, before = g.constant(node, 1), g.shapes.get(node.input[0], ())
    swap = only_user(g, node.output[0], ("Transpose",))
    back = only_user(g, swap.output[0], ("Reshape",)) if swap else None
    if shape is None or back is None or len(before) < 3 or None in before[1:] or len(shape) != len(before) + 1:
        return None
    rank, flat = len(shape), g.constant(back, 1)
    grouped = int(shape[1]) * int(shape[2]) == before[1] and [int(v) for v in shape[3:]] == list(before[2:])
    swapped = [int(p) for p in attrs(swap).get("perm", [])] == [0, 2, 1, *range(3, rank)]
    restored = flat is not None and [int(v) for v in flat[1:]] == list(before[1:])
    flattened = flat is not None and len(flat) == 2 and int(flat[1]) in (-1, math.prod(before[1:]))  # a flatten right after
    if not (grouped and swapped and (restored or flattened)):
        return None
    return [Layer("shuffle", {"groups": int(shape[1])})] + ([] if restored else [Layer("flatten")]), back.output[0]


# --- concat split -------------------------------------------------------------


@converts("Split")
def split(node, g: OnnxGraph):
    """x.chunk(n, dim=1) as one Split, its parts meeting at one Concat, part i in branch i: `concat split`."""
    parts, channels = list(node.output), (g.shapes.get(node.input[0]) or (None, None))[1]
    sizes = g.constant(node, 1) if len(node.input) > 1 else attrs(node).get("split")  # an attribute before opset 13
    sizes = [int(s) for s in sizes] if sizes is not None else [channels // len(parts)] * len(parts) if channels else []
    if int(attrs(node).get("axis", 0)) != 1 or len(set(sizes)) != 1 or sum(sizes) != channels:
        raise unexpressible(node, f"Split into {sizes or 'parts'} on axis {attrs(node).get('axis', 0)} is not equal parts of the channels")
    inside = g.between(node.input[0], g.output)
    users = [user for part in parts for user in g.consumers.get(part, []) if id(user) in inside]
    join = g.join(parts[0], users, inside, g.output) if users else node
    group = _concat_split(Walker(g, convert), node.input[0], [node], parts, join)
    if group is None:
        raise unexpressible(node, "Split whose parts do not each go through their own branch into one Concat is not a specc layer")
    return group, join.output[0]


def _sliced(walker: Walker, fork: str, join):
    """x.chunk(n, dim=1) as n Slices of the channels (other exporters' form), meeting at `join`."""
    g = walker.graph
    if not any(user.op_type == "Slice" for user in g.consumers.get(fork, [])):
        return None  # the usual case, answered before the walk through the region below
    inside = g.between(fork, join.output[0])
    users = [user for user in g.consumers.get(fork, []) if id(user) in inside]
    channels = (g.shapes.get(fork) or (None, None))[1]
    if not channels or len(users) < 2 or channels % len(users) or any(user.op_type != "Slice" for user in users):
        return None
    ranges = [_channel_range(g, user, channels) for user in users]
    step = channels // len(users)
    if sorted(r for r in ranges if r) != [(i * step, (i + 1) * step) for i in range(len(users))]:
        return None
    slices = [user for _, user in sorted(zip(ranges, users, strict=True), key=lambda pair: pair[0])]
    return _concat_split(walker, fork, slices, [s.output[0] for s in slices], join)


FORK_PATTERNS.append(_sliced)


def _channel_range(g: OnnxGraph, node, channels: int) -> tuple[int, int] | None:
    """[start, end) of the channels a Slice takes, None where it slices anything else or by a computed amount."""
    if len(node.input) > 1:  # opset 10 on: starts, ends, axes, steps as inputs
        if any(name and name not in g.constants for name in node.input[1:]):
            return None
        starts, ends, axes, steps = (g.constant(node, i) for i in range(1, 5))
    else:
        a = attrs(node)
        starts, ends, axes, steps = a.get("starts"), a.get("ends"), a.get("axes"), None
    rank = len(g.shapes.get(node.input[0], ()))
    if starts is None or ends is None:
        return None
    axes = list(range(len(starts))) if axes is None else [int(x) for x in axes]  # ONNX's default: the first axes
    if not rank or axes != [axes[0]] or axes[0] % rank != 1 or (steps is not None and [int(x) for x in steps] != [1]):
        return None
    start, end = (int(v) + channels if int(v) < 0 else int(v) for v in (starts[0], ends[0]))
    return min(start, channels), min(end, channels)


def _concat_split(walker: Walker, source: str, forks: list, parts: list[str], join):
    """`concat split` where Concat input i is computed from part i alone and every node between the
    fork and the join is on one such branch; None otherwise."""
    g = walker.graph
    if join.op_type != "Concat" or axis_of(join) != 1 or len(join.input) != len(parts):
        return None
    branches = [g.between(part, end) for part, end in zip(parts, join.input, strict=True)]
    on_some = set().union(*branches)
    reached = all(b or part == end for b, part, end in zip(branches, parts, join.input, strict=True))
    whole = on_some | {id(n) for n in forks} | {id(join)} == g.between(source, join.output[0])
    if not reached or not whole or sum(map(len, branches)) != len(on_some):
        return None
    walked = [walker.walk(part, end) or [Layer("identity")] for part, end in zip(parts, join.input, strict=True)]
    return [Group("concat", walked, "split")]
