"""One converter per ONNX operator, in a registry by op type (as onnx2torch does).

A converter takes a node and the graph and returns the spec statements it becomes and the tensor
where the chain goes on (a converter may take the next node too: MatMul then Add is one fc).
Attributes specc cannot express are named in the error, never dropped.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import SpeccError
from .graph import OnnxGraph, unexpressible
from .tree import Layer

CONVERTERS = {}
BN_EPS = 1e-5  # PyTorch's default, and what a batchnorm folded into a conv is given back


def converts(*op_types: str):
    def register(fn):
        for op in op_types:
            CONVERTERS[op] = fn
        return fn

    return register


def convert(node, g: OnnxGraph, converter=None):
    """The node's statements, each layer knowing the source module it came from (see `Layer.source`).

    `converter`: the one to use in place of the registry's (a channels-last region has its own)."""
    converter = converter or CONVERTERS.get(node.op_type)
    if converter is None:
        raise unexpressible(node, f"{node.op_type} is not a specc layer{_WHY.get(node.op_type, '')}")
    statements, tensor = converter(node, g)
    for st in statements:
        if isinstance(st, Layer) and st.source is None:
            st.source = st.name or layer_name(node)
    return statements, tensor


_WHY = {
    "LSTM": " (a recurrent layer)",
    "GRU": " (a recurrent layer)",
    "RNN": " (a recurrent layer)",
    "Gather": " (indexing into a tensor)",
    "MatMul": " (a product of two activations)",
}


def attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def number(value: float) -> float:
    """A float32 attribute as the decimal a person wrote: 0.10000000149 -> 0.1."""
    return float(f"{float(value):.6g}")


def _one(node, name: str, values) -> int:
    values = list(values)
    if len(set(values)) != 1:
        raise unexpressible(node, f"{node.op_type} with {name} {values} differing per axis is not a specc layer")
    return int(values[0])


def _padding(node, a: dict, rank: int, same_ok: bool = False) -> int | str:
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise unexpressible(node, f"{node.op_type} with auto_pad={a['auto_pad'].decode()} is not supported; export with explicit pads")
    pads = list(a.get("pads", [0] * 2 * rank))
    if pads[:rank] != pads[rank:]:
        if same_ok and _is_same(a, pads, rank):
            return "same"  # PyTorch's padding="same" for an even filter: the odd pixel at the end
        raise unexpressible(node, f"{node.op_type} with asymmetric pads {pads} is not a specc layer")
    return _one(node, "pads", pads)


def _is_same(a: dict, pads: list[int], rank: int) -> bool:
    kernel, dilations = a.get("kernel_shape", []), a.get("dilations", [1] * rank)
    if set(a.get("strides", [1] * rank)) != {1} or len(kernel) != rank:
        return False
    total = [d * (k - 1) for k, d in zip(kernel, dilations, strict=True)]
    return all(pads[i] == t // 2 and pads[rank + i] == t - t // 2 for i, t in enumerate(total))


def layer_name(node, part: int = 0) -> str | None:
    """`layer1.0.conv1+layer1.0.bn1/Conv` (specc's export) or `/layer1/layer1.0/conv1/Conv` (PyTorch's)."""
    scope = (node.name or "").rsplit("/", 1)[0] if "/" in (node.name or "") else ""
    parts = scope.split("+")
    return parts[part].strip("/") if len(parts) > part and parts[part].strip("/") else None


@converts("Conv")
def conv(node, g: OnnxGraph):
    weight = g.constant(node, 1)
    if weight is None:
        raise unexpressible(node, "Conv whose filters are computed, not constants, is not a specc layer")
    a, rank = attrs(node), weight.ndim - 2
    args = {
        "K": weight.shape[0],
        "F": _one(node, "kernel_shape", a.get("kernel_shape", weight.shape[2:])),
        "S": _one(node, "strides", a.get("strides", [1] * rank)),
        "P": _padding(node, a, rank, same_ok=True),
        "dilation": _one(node, "dilations", a.get("dilations", [1] * rank)),
        "groups": int(a.get("group", 1)),
    }
    args = {k: v for k, v in args.items() if k in ("K", "F") or v != (0 if k == "P" else 1)}
    bias = g.constant(node, 2)
    if len(node.input) > 2 and node.input[2] and bias is None:
        raise unexpressible(node, "Conv whose bias is computed is not a specc layer")
    if "+" in (node.name or ""):  # specc's export folded a batchnorm into this conv: give it back as a layer
        return _unfolded(node, args, weight, bias), node.output[0]
    tensors = {"weight": weight} | ({"bias": bias} if bias is not None else {})
    return [Layer("conv", args | ({} if bias is not None else {"bias": False}), layer_name(node), tensors)], node.output[0]


def _unfolded(node, args: dict, weight, bias) -> list[Layer]:
    """Conv and the batchnorm folded into it: the batchnorm as the identity plus the folded shift.

    The folded bias keeps the conv's own name (`x.bias`) where the conv had one, and gets a new
    one (`x.weight_bias`) where it had none: so the conv's `bias` comes back as it was written.
    """
    channels = weight.shape[0]
    had_bias = bias is not None and node.input[2] == node.input[1].rsplit(".", 1)[0] + ".bias"
    shift = bias if bias is not None and not had_bias else np.zeros(channels, weight.dtype)
    conv = Layer(
        "conv", args if had_bias else {**args, "bias": False}, layer_name(node), {"weight": weight} | ({"bias": bias} if had_bias else {})
    )
    stats = {"weight": np.ones(channels, weight.dtype), "bias": shift, "running_mean": np.zeros(channels, weight.dtype)}
    stats["running_var"] = np.full(channels, 1 - BN_EPS, weight.dtype)  # (x - 0) / sqrt(var + eps) = x
    return [conv, Layer("batchnorm", {}, layer_name(node, 1), stats)]


@converts("ConvTranspose")
def deconv(node, g: OnnxGraph):
    weight, bias = g.constant(node, 1), g.constant(node, 2)
    if weight is None or (len(node.input) > 2 and node.input[2] and bias is None):
        raise unexpressible(node, "ConvTranspose whose filters or bias are computed is not a specc layer")
    a, rank = attrs(node), weight.ndim - 2
    if "output_shape" in a:
        raise unexpressible(node, "ConvTranspose with output_shape is not supported; export with pads and output_padding")
    groups = int(a.get("group", 1))
    args = {
        "K": weight.shape[1] * groups,
        "F": _one(node, "kernel_shape", a.get("kernel_shape", weight.shape[2:])),
        "S": _one(node, "strides", a.get("strides", [1] * rank)),
        "P": _padding(node, a, rank),
        "output_padding": _one(node, "output_padding", a.get("output_padding", [0] * rank)),
        "dilation": _one(node, "dilations", a.get("dilations", [1] * rank)),
        "groups": groups,
    }
    args = {k: v for k, v in args.items() if k in ("K", "F") or v != (0 if k in ("P", "output_padding") else 1)}
    tensors = {"weight": weight} | ({"bias": bias} if bias is not None else {})
    return [Layer("deconv", args | ({} if bias is not None else {"bias": False}), layer_name(node), tensors)], node.output[0]


@converts("BatchNormalization")
def batchnorm(node, g: OnnxGraph):
    tensors = dict(zip(("weight", "bias", "running_mean", "running_var"), (g.constant(node, i) for i in range(1, 5)), strict=True))
    if any(t is None for t in tensors.values()):
        raise unexpressible(node, "BatchNormalization with computed statistics is not a specc layer")
    a = attrs(node)
    momentum = 1 - number(a.get("momentum", 0.9))  # ONNX keeps 1 - PyTorch's momentum
    return [Layer("batchnorm", batchnorm_args(a.get("epsilon", 1e-5), momentum), layer_name(node), tensors)], node.output[0]


def batchnorm_args(eps: float, momentum: float) -> dict:
    """A batchnorm's arguments as a spec writes them: those that differ from PyTorch's defaults."""
    eps, momentum = number(eps), number(momentum)
    return ({"eps": eps} if eps != 1e-5 else {}) | ({"momentum": momentum} if momentum != 0.1 else {})


def _simple(kind: str, **fields):
    def converter(node, g):
        a = attrs(node)
        args = {field: number(a.get(attr, default)) for field, (attr, default, usual) in fields.items()}
        args = {k: v for k, v in args.items() if v != fields[k][2]}
        return [Layer(kind, args)], node.output[0]

    return converter


CONVERTERS |= {
    "Relu": _simple("relu"),
    "Sigmoid": _simple("sigmoid"),
    "Tanh": _simple("tanh"),
    "Gelu": _simple("gelu"),
    "HardSigmoid": _simple("hardsigmoid"),
    "HardSwish": _simple("hardswish"),
    "LeakyRelu": _simple("leakyrelu", slope=("alpha", 0.01, 0.01)),
    "Elu": _simple("elu", alpha=("alpha", 1.0, 1.0)),
}


@converts("Identity")
def identity(node, g):
    return [], node.output[0]


@converts("Dropout")
def dropout(node, g: OnnxGraph):
    ratio = g.constant(node, 1)
    p = number(ratio if ratio is not None else attrs(node).get("ratio", 0.5))
    return [Layer("dropout", {"p": p} if p != 0.5 else {})], node.output[0]


@converts("Softmax")
def softmax(node, g: OnnxGraph):
    rank = len(g.shapes.get(node.input[0], ()))
    axis = attrs(node).get("axis", -1)
    if axis not in (1, 1 - rank):
        raise unexpressible(node, f"Softmax over axis {axis} of a rank-{rank} tensor is not specc's softmax (over channels)")
    return [Layer("softmax")], node.output[0]


@converts("Clip")
def clip(node, g: OnnxGraph):
    a = attrs(node)
    low, high = g.constant(node, 1), g.constant(node, 2)
    low = float(low) if low is not None else a.get("min", -math.inf)
    high = float(high) if high is not None else a.get("max", math.inf)
    if (low, high) == (0, 6):
        return [Layer("relu6")], node.output[0]
    if low == 0 and high == math.inf:
        return [Layer("relu")], node.output[0]
    raise unexpressible(node, f"Clip to [{low:g}, {high:g}] is not a specc layer (relu6 is Clip to [0, 6])")


@converts("MaxPool", "AveragePool")
def pool(node, g: OnnxGraph):
    a = attrs(node)
    kernel = list(a["kernel_shape"])
    rank = len(kernel)
    mode = "max" if node.op_type == "MaxPool" else "avg"
    if _one(node, "dilations", a.get("dilations", [1] * rank)) != 1:
        raise unexpressible(node, "MaxPool with dilation is not a specc layer")
    args = {"F": _one(node, "kernel_shape", kernel), "S": _one(node, "strides", a.get("strides", [1] * rank)), "P": _padding(node, a, rank)}
    if mode == "avg" and args["P"] and not a.get("count_include_pad", 0):
        raise unexpressible(node, "AveragePool that leaves the padding out of its averages is not a specc layer")
    args = {k: v for k, v in args.items() if not (k == "S" and v == args["F"]) and not (k == "P" and v == 0)}
    return [Layer("pool", {"mode": mode, **args, **({"ceil": True} if a.get("ceil_mode") else {})})], node.output[0]


@converts("GlobalAveragePool", "GlobalMaxPool")
def global_pool(node, g):
    return [Layer("pool", {"mode": "max" if "Max" in node.op_type else "avg", "global": True})], node.output[0]


@converts("ReduceMean", "ReduceMax")
def reduce(node, g: OnnxGraph):
    """torch's x.mean((2, 3), keepdim=True) and amax, as the exporter writes global pooling."""
    a = attrs(node)
    rank = len(g.shapes.get(node.input[0], ()))
    axes = g.constant(node, 1)
    axes = sorted(int(x) % rank for x in (axes if axes is not None else a.get("axes", []))) if rank else []
    if rank < 3 or axes != list(range(2, rank)):
        raise unexpressible(node, f"{node.op_type} over axes {axes} is not a global pool")
    mode = "avg" if node.op_type == "ReduceMean" else "max"
    layers = [Layer("pool", {"mode": mode, "global": True})] + ([] if a.get("keepdims", 1) else [Layer("flatten")])
    return layers, node.output[0]


@converts("Unsqueeze")
def unsqueeze(node, g: OnnxGraph):
    """A 1-D global pool as the exporter writes it: Unsqueeze to 2-D, ReduceMax or ReduceMean, Squeeze back."""
    reduce_node = only_user(g, node.output[0], ("ReduceMax", "ReduceMean"))
    squeeze = only_user(g, reduce_node.output[0], ("Squeeze",)) if reduce_node else None
    before, after = g.shapes.get(node.input[0], ()), g.shapes.get(squeeze.output[0], ()) if squeeze else ()
    if squeeze is None or len(after) != len(before) or len(before) < 3 or after[:2] != before[:2] or set(after[2:]) != {1}:
        raise unexpressible(node, "Unsqueeze is not a specc layer (only as part of a 1-D global pool)")
    return [Layer("pool", {"mode": "max" if reduce_node.op_type == "ReduceMax" else "avg", "global": True})], squeeze.output[0]


def only_user(g: OnnxGraph, tensor: str, op_types: tuple[str, ...]):
    users = g.consumers.get(tensor, [])
    return users[0] if len(users) == 1 and users[0].op_type in op_types else None


@converts("Flatten")
def flatten(node, g):
    if attrs(node).get("axis", 1) != 1:
        raise unexpressible(node, "Flatten from an axis other than 1 is not specc's flatten")
    return [Layer("flatten")], node.output[0]


@converts("Reshape")
def reshape(node, g: OnnxGraph):
    shape, before = g.constant(node, 1), g.shapes.get(node.input[0], ())
    features = math.prod(before[1:]) if before and None not in before[1:] else None
    if shape is not None and len(shape) == 2 and shape[0] in (-1, 0, before[0] if before else -1) and shape[1] in (-1, features):
        return [Layer("flatten")], node.output[0]
    maxout = _maxout(node, g, shape, before)
    if maxout:
        return maxout
    raise unexpressible(
        node, f"Reshape to {[int(v) for v in shape] if shape is not None else 'a computed shape'} is not a flatten to (N, -1)"
    )


def _maxout(node, g: OnnxGraph, shape, before):
    """Maxout as the exporter writes it: channels reshaped to (C/k, k), then the max over the k."""
    reduce_node = only_user(g, node.output[0], ("ReduceMax",))
    if shape is None or reduce_node is None or len(shape) != len(before) + 1 or None in before[1:]:
        return None
    axes = g.constant(reduce_node, 1)
    axes = list(axes) if axes is not None else attrs(reduce_node).get("axes", [])
    grouped = [int(v) for v in shape[3:]] == list(before[2:]) and shape[1] * shape[2] == before[1]
    if not grouped or axes != [2] or attrs(reduce_node).get("keepdims", 1):
        return None
    return [Layer("maxout", {"K": int(shape[2])})], reduce_node.output[0]


@converts("Gemm")
def gemm(node, g: OnnxGraph):
    a = attrs(node)
    weight = g.constant(node, 1)
    if weight is None or a.get("transA", 0) or number(a.get("alpha", 1)) != 1 or number(a.get("beta", 1)) != 1:
        raise unexpressible(node, "Gemm other than x·Wᵀ + b with constant W is not a specc fc")
    weight = weight if a.get("transB", 0) else weight.T
    return _fc(node, weight, g.constant(node, 2)), node.output[0]


@converts("MatMul")
def matmul(node, g: OnnxGraph):
    """x·W, with the following Add of a constant as its bias: PyTorch's Linear as some exporters write it."""
    weight = g.constant(node, 1)
    if weight is None or weight.ndim != 2:
        raise unexpressible(node, "MatMul of two activations is not a specc layer")
    users = g.consumers.get(node.output[0], [])
    if len(users) == 1 and users[0].op_type == "Add" and len(g.activations(users[0])) == 1:
        add = users[0]
        bias = next(g.constants[name] for name in add.input if name in g.constants)
        return _fc(node, weight.T, bias), add.output[0]
    return _fc(node, weight.T, None), node.output[0]


def _fc(node, weight, bias):
    if bias is not None and bias.shape != (weight.shape[0],):
        raise SpeccError(f"graph node {node.name}: bias of shape {list(bias.shape)} for {weight.shape[0]} outputs is not an fc's")
    tensors = {"weight": np.ascontiguousarray(weight)} | ({"bias": bias} if bias is not None else {})
    return [Layer("fc", {"K": weight.shape[0]} | ({} if bias is not None else {"bias": False}), layer_name(node), tensors)]
