"""The ONNX graph as a graph: producers, consumers, constants and shapes, and the walk that finds
residual and concat groups where branches that leave one tensor meet again (a post-dominator)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from ..errors import InputFileError, SpeccError
from .tree import Group, Layer, Statement


class OnnxGraph:
    def __init__(self, model):
        from onnx import numpy_helper

        graph = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 18)
        self.constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        # Nodes that compute from the input's shape alone (its batch size, in a dynamic graph) are not
        # layers: kept apart, so that the input's Shape is not a branch; patterns.py evaluates them.
        self.nodes, self.size_nodes, self.sizes = [], [], set()
        for node in graph.node:
            inputs = [name for name in node.input if name]
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
            elif node.op_type == "Shape" or (
                inputs and all(n in self.constants or n in self.sizes for n in inputs) and any(n in self.sizes for n in inputs)
            ):
                self.size_nodes.append(node)
                self.sizes.update(node.output)
            else:
                self.nodes.append(node)
        _chain_concats(self.nodes)
        self.index = {id(node): i for i, node in enumerate(self.nodes)}
        self.producer = {out: node for node in self.nodes for out in node.output}
        self.consumers: dict[str, list] = defaultdict(list)
        for node in self.nodes:
            for name in dict.fromkeys(self.activations(node)):
                self.consumers[name].append(node)
        self.shapes = {vi.name: _dims(vi) for vi in (*graph.input, *graph.value_info, *graph.output)}
        inputs = [vi for vi in graph.input if vi.name not in self.constants]
        if len(inputs) != 1 or len(graph.output) != 1:
            raise SpeccError(
                f"the graph has {len(inputs)} inputs and {len(graph.output)} outputs; a specc network has one of each",
                hint="export the model with a single input tensor and a single output",
            )
        self.input, self.output = inputs[0].name, graph.output[0].name

    def activations(self, node) -> list[str]:
        """The inputs that are computed from the network's input, not constants nor sizes."""
        return [name for name in node.input if name and name not in self.constants and name not in self.sizes]

    def constant(self, node, i: int):
        return self.constants.get(node.input[i]) if len(node.input) > i and node.input[i] else None

    def between(self, start: str, end: str) -> set[int]:
        """The nodes on some path from tensor `start` to tensor `end`."""
        behind, todo = set(), [end]
        while todo:
            tensor = todo.pop()
            node = self.producer.get(tensor)
            if tensor == start or node is None or id(node) in behind:
                continue
            behind.add(id(node))
            todo.extend(self.activations(node))
        ahead, todo = set(), [start]
        while todo:
            for node in self.consumers.get(todo.pop(), []):
                if id(node) in behind and id(node) not in ahead:
                    ahead.add(id(node))
                    todo.extend(node.output)
        return ahead

    def join(self, fork: str, users: list, inside: set[int], end: str):
        """The first node every path from `fork` (inside `inside`) passes through: the branches' meeting point."""
        exit_node = self.producer[end]
        post: dict[int, set[int]] = {}
        for node in sorted((n for n in self.nodes if id(n) in inside), key=lambda n: -self.index[id(n)]):
            if node is exit_node:
                post[id(node)] = {id(node)}
                continue
            after = [post[id(c)] for out in node.output for c in self.consumers.get(out, []) if id(c) in post]
            post[id(node)] = {id(node)} | (set.intersection(*after) if after else set())
        if any(id(u) not in post for u in users):
            raise SpeccError(f"graph tensor {fork}: its branches do not meet again before {end}", hint="specc groups must nest")
        common = set.intersection(*(post[id(u)] for u in users))
        return min((n for n in self.nodes if id(n) in common), key=lambda n: self.index[id(n)])


def _chain_concats(nodes: list) -> None:
    """DenseNet's `torch.cat(features)`: Concat(x0, ..., xk) where Concat(x0, ..., xk-1) is in the
    graph too is the same as Concat(that, xk). Rewritten so, every dense layer is a two-way concat of
    what came before and its own output, as a spec writes it (`concat { identity  seq {...} }`):
    left as it was, branches that share all their inputs would be walked again for every concat."""
    concats = {(tuple(n.input), axis_of(n)): n for n in nodes if n.op_type == "Concat"}
    for node in nodes:
        if node.op_type == "Concat" and len(node.input) == 1:
            node.op_type = "Identity"  # torch.cat([x]), the first dense layer's input
            del node.attribute[:]
            continue
        inputs = list(node.input)
        for k in range(len(inputs) - 1, 1, -1):
            shorter = concats.get((tuple(inputs[:k]), axis_of(node)))
            if shorter is not None:
                del node.input[:]
                node.input.extend([shorter.output[0], *inputs[k:]])
                break


def load(path: str | Path):
    """The ONNX model at `path`, shapes inferred; a clear error for a missing or damaged file."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"no such ONNX file: {path}", "check the path; ONNX models end in .onnx")
    try:
        onnx.checker.check_model(str(path))  # from the file: checking the loaded model would serialise it again
        model = onnx.load(str(path))
        _name_after_modules(model.graph)
        return onnx.shape_inference.infer_shapes(model)
    except (DecodeError, onnx.checker.ValidationError, onnx.shape_inference.InferenceError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else err.__class__.__name__
        raise InputFileError(
            f"{path} is not a readable ONNX model: {first}", "the file may be truncated or not ONNX; export it again"
        ) from None


def _name_after_modules(graph) -> None:
    """A file straight from torch.onnx.export names its nodes `node_Conv_291`, but records in each
    node's metadata the module it came from: name the nodes from that as specc's own export does
    (`layer1.0.conv1+layer1.0.bn1/Conv` where a batchnorm was folded into the conv), so that layer
    names and folded batchnorms come back alike from both."""
    from ..backends.onnx import name_nodes

    if any("/" in node.name for node in graph.node):
        return  # named already (by specc's export, or by the TorchScript exporter: `/layer1/conv1/Conv`)
    name_nodes(graph, {t.name for t in graph.initializer if "." in t.name})  # `conv1.weight`, not the exporter's `val_12`


def _dims(value_info) -> tuple:
    shape = value_info.type.tensor_type.shape
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in shape.dim)


# Where branches that are not the whole tensor meet (slices of its channels, patterns.py):
# each takes the walker, the fork and the join, and gives the statements or None.
FORK_PATTERNS: list = []


class Walker:
    """Statements from tensor to tensor: a chain of layers, and a group wherever the chain forks."""

    def __init__(self, graph: OnnxGraph, convert):
        self.graph, self.convert = graph, convert

    def walk(self, start: str, end: str) -> list[Statement]:
        g, out, tensor = self.graph, [], start
        inside = g.between(start, end)
        while tensor != end:
            users = [n for n in g.consumers.get(tensor, []) if id(n) in inside]
            if not users:
                raise SpeccError(
                    f"graph tensor {tensor} leads nowhere on the way to the output", hint="a graph with dead ends is not a chain of layers"
                )
            if len(users) == 1 and g.activations(users[0]) == [tensor]:
                statements, tensor = self.convert(users[0], g)
            else:
                join = g.join(tensor, users, inside, end)
                statements, tensor = self.group(tensor, join), join.output[0]
            out.extend(statements)
        return out

    def group(self, fork: str, join) -> list[Statement]:
        scope = (join.name or "").rpartition("/")[0].strip("/") or None  # `features.5` in `features.5/Add`
        if self._is_gelu(fork, join):
            return [Layer("gelu", source=scope)]
        for pattern in FORK_PATTERNS:
            found = pattern(self, fork, join)
            if found:
                return found
        g = self.graph
        branches = [self.walk(fork, name) for name in g.activations(join)]
        starts = [min((g.index[i] for i in g.between(fork, name)), default=-1) for name in g.activations(join)]
        merge = _MERGES.get(join.op_type)
        if merge is None or (join.op_type == "Concat" and axis_of(join) != 1):
            raise unexpressible(join, f"{join.op_type} of {_count(branches)} activations is not a specc layer")
        statements = merge(join, branches, starts)
        for st in statements:  # the join's module owns the group, or the silu or gelu the join stands for
            st.source = st.source or scope
        return statements

    def _is_gelu(self, fork: str, join) -> bool:
        """x · 0.5 · (1 + erf(x / √2)): GELU as the exporter writes it before opset 20."""
        inputs = self.graph.activations(join)
        if join.op_type != "Mul" or len(inputs) != 2 or fork not in inputs:
            return False
        other = next((name for name in inputs if name != fork), fork)
        inside = sorted(self.graph.between(fork, other), key=lambda n: self.graph.index[n])
        return [self.graph.nodes[self.graph.index[i]].op_type for i in inside] == ["Div", "Erf", "Add", "Mul"]


def axis_of(node) -> int | None:
    return next((a.i for a in node.attribute if a.name == "axis"), None)


def unexpressible(node, why: str) -> SpeccError:
    return SpeccError(
        f"graph node {node.name or node.output[0]}: {why}",
        hint="specc writes CNNs: convolutions, pooling, activations, fc, and branches joined by residual add or concat",
    )


def _residual(join, branches: list[list[Statement]], starts: list[int]) -> list[Statement]:
    """`starts`: where each branch's first node stands in the graph; a projection computed before the body is `shortcut_first`."""
    if len(branches) != 2:
        raise unexpressible(join, f"Add of {_count(branches)} activations is not a residual")
    first, second = branches
    if not first or not second:
        return [Group("residual", [first or second])]
    if _is_projection(second) or _is_projection(first):
        (body, body_start), (shortcut, start) = sorted(zip(branches, starts, strict=True), key=lambda b: _is_projection(b[0]))
        words = "shortcut=project shortcut_first" if start < body_start else "shortcut=project"
        return [Group("residual", [body], words, shortcut=shortcut, shortcut_first=start < body_start)]
    raise unexpressible(join, "Add of two computed branches is not a residual (one must be the input or a 1x1 conv and batchnorm)")


def _is_projection(branch: list[Statement]) -> bool:
    if len(branch) != 2 or not all(isinstance(s, Layer) for s in branch):
        return False
    conv, bn = branch
    plain = conv.args.get("F") == 1 and conv.args.get("bias") is False and set(conv.args) <= {"K", "F", "S", "bias"}
    return conv.kind == "conv" and plain and bn.kind == "batchnorm" and not bn.args


def _concat(join, branches: list[list[Statement]], starts: list[int]) -> list[Statement]:
    return [Group("concat", [branch or [Layer("identity")] for branch in branches])]


def _product(join, branches: list[list[Statement]], starts: list[int]) -> list[Statement]:
    """x · f(x): silu where f is a sigmoid, otherwise a gate (squeeze-and-excitation)."""
    if len(branches) == 2 and [] in branches:
        body = next(b for b in branches if b)
        if [s.kind for s in body] == ["sigmoid"]:
            return [Layer("silu")]
        if [s.kind for s in body] == ["hardsigmoid"]:
            return [Layer("hardswish")]
        return [Group("gate", [body])]
    raise unexpressible(join, "Mul of two computed branches is not a specc layer")


_MERGES = {"Add": _residual, "Concat": _concat, "Mul": _product}


def _count(branches: list) -> str:
    return {2: "two", 3: "three", 4: "four"}.get(len(branches), str(len(branches)))
