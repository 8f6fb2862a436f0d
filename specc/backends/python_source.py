"""Network IR to one standalone, readable PyTorch file.

This is the only code generator: `net.to_torch()` executes the very source
written here, so the module in memory and `specc compile -o model.py` cannot
drift apart. `__init__` builds one module per layer, in namespaces
(nn.ModuleDict) that mirror the spec's names; `forward` is one line per layer,
with the residual adds and concats written out, as a person would.

Text from outside (the spec's path, names) reaches the file only as escaped
string literals (`_docstring_text`, `_quoted`), never raw: a path that holds
three double quotes and code, or `C:\\Users\\net.cnn`, stays text.
"""

from __future__ import annotations

import builtins
import keyword
import unicodedata

from ..errors import SpeccError
from ..ir import Group, Layer, Network, Node
from ..layers import HELPERS
from ..shapes import shape_text

_INIT_FUNCTIONS = {
    "kaiming": '''def init_weights(model: nn.Module) -> None:
    """He initialisation for convs (fan-out, ReLU gain), as torchvision's ResNets; batchnorm to identity."""
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)''',
    "xavier": '''def init_weights(model: nn.Module) -> None:
    """Glorot (Xavier) uniform weights for convs and fc layers, zero biases."""
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)''',
}


# Names the generated file defines or uses at the top level: a class named like one would shadow it.
FILE_NAMES = frozenset({"torch", "nn", "F", "INPUT_SHAPE", "init_weights", "model", "batch", *HELPERS})


def class_name(network: Network) -> str:
    name = "".join(part[:1].upper() + part[1:] for part in network.name.replace("-", "_").split("_") if part)
    name = _as_python_reads_it(name)
    if not name.isidentifier() or keyword.iskeyword(name):
        return "Network"
    return f"{name}Net" if _class_name_problem(name) else name


def check_class_name(name: str) -> None:
    """Raise SpeccError (exit 2) unless `name` can name the generated class."""
    problem = _class_name_problem(name)
    if problem:
        raise SpeccError(f"the class name '{name}' {problem}", hint="choose a Python name of your own, e.g. --class-name MyNet")


def _as_python_reads_it(name: str) -> str:
    """Python reads identifiers in NFKC form (fullwidth `ｎｎ` is `nn`): check and write that form."""
    return unicodedata.normalize("NFKC", name)


def _class_name_problem(name: str) -> str | None:
    if name != _as_python_reads_it(name):
        return _class_name_problem(_as_python_reads_it(name))
    if not name.isidentifier():
        return "is not a Python name: use letters, digits and _, not starting with a digit"
    if keyword.iskeyword(name):
        return "is a Python keyword"
    if name in FILE_NAMES:
        return "is a name the generated file uses itself"
    if hasattr(builtins, name):
        return "is one of Python's built-in names"
    return None


def generate(network: Network, name: str | None = None) -> str:
    if name is not None:
        check_class_name(name)
        name = _as_python_reads_it(name)
    return _Writer(network, name or class_name(network)).source()


def _docstring_text(text: str) -> str:
    """`text` escaped for the inside of a triple-quoted docstring: the docstring's value is `text` itself.

    Backslashes and quotes are escaped, so nothing can end the literal; characters that are not
    printable (newlines, line and paragraph separators, controls, lone surrogates) become escapes.
    """
    out = []
    for c in text:
        if c in '\\"':
            out.append("\\" + c)
        elif c.isprintable():
            out.append(c)
        else:
            out.append(repr(c)[1:-1])
    return "".join(out)


def _quoted(text: str) -> str:
    """A Python string literal of `text`: double-quoted where repr allows, as the rest of the file."""
    literal = repr(text)
    if literal.startswith("'") and "'" not in text and '"' not in text:
        return f'"{literal[1:-1]}"'
    return literal


class _Namespace:
    """Unique local variable names for forward: identity, identity_1, ..."""

    def __init__(self):
        self.used: set[str] = {"x", "self", "torch", "nn", "F"}

    def fresh(self, base: str) -> str:
        name, n = base, 0
        while name in self.used:
            n += 1
            name = f"{base}_{n}"
        self.used.add(name)
        return name


class _Writer:
    def __init__(self, network: Network, name: str):
        self.network, self.name = network, name
        self.init_lines: list[str] = []
        self.forward_lines: list[str] = []
        self.frozen: list[str] = []
        self.frozen_norms: list[str] = []
        self.containers: set[tuple[str, ...]] = set()
        self.helpers: set[str] = set()
        self.uses_pad = False
        self.locals = _Namespace()

    def source(self) -> str:
        self.emit(self.network.body, "x", "x")
        self.forward_lines.append("return x")
        return self.assemble()

    # ---- module access and construction --------------------------------------------

    def access(self, layer: Layer | tuple[str, ...]) -> str:
        # The expander has refused every name that could not name a module (ir.module_name_problem).
        head, *rest = layer.path if isinstance(layer, Layer) else layer
        return f"self.{head}" + "".join(f"[{_quoted(p)}]" for p in rest)

    def construct(self, layer: Layer) -> None:
        for depth in range(1, len(layer.path)):
            prefix = layer.path[:depth]
            if prefix not in self.containers:
                self.containers.add(prefix)
                self.init_lines.append(f"{self.access(prefix)} = nn.ModuleDict()")
        expr = layer.kind.torch(layer.args, layer.in_shape, layer.pads)
        head = expr.split("(", 1)[0]
        if head in HELPERS:
            self.helpers.add(head)
        self.init_lines.append(f"{self.access(layer)} = {expr}  # {shape_text(layer.out_shape)}, line {layer.line}")
        if layer.frozen:
            self.frozen.append(f"{self.access(layer)}.requires_grad_(False)")
            if layer.kind.batch_statistics:
                self.frozen_norms.append(f"{self.access(layer)}.eval()")

    # ---- forward ---------------------------------------------------------------------------

    def emit(self, nodes: list[Node], src: str, dst: str) -> None:
        """Lines computing `dst` from `src` through `nodes`.

        Nothing works in place: a module may return its input itself (dropout at eval, an
        empty branch), so an in-place op could overwrite a tensor that a residual's
        shortcut, a concat's other branch or the caller still reads. In-place ReLUs bought
        nothing measurable (bench/forward_overhead.py).
        """
        if not nodes and src != dst:
            self.forward_lines.append(f"{dst} = {src}")
        for node in nodes:
            if isinstance(node, Layer):
                self.layer(node, src, dst)
            elif node.kind == "residual":
                self.residual(node, src, dst)
            elif node.kind == "concat":
                self.concat(node, src, dst)
            elif node.kind == "gate":
                self.gate(node, src, dst)
            else:
                self.emit(node.children, src, dst)
            src = dst

    def layer(self, layer: Layer, src: str, dst: str) -> None:
        self.construct(layer)
        call = self.access(layer)
        pad = layer.kind.explicit_pad(layer.pads)
        arg = f"F.pad({src}, {pad})" if pad else src
        self.uses_pad |= bool(pad)
        self.forward_lines.append(f"{dst} = {call}({arg})")

    def residual(self, group: Group, src: str, dst: str) -> None:
        identity = self.locals.fresh("identity")
        self.forward_lines.append(f"{identity} = {src}")
        shortcut = identity
        if group.shortcut_first:  # built first, so its tensors come first in the state_dict (RegNet)
            shortcut = self.locals.fresh("shortcut")
            self.shortcut(group, identity, shortcut)
        self.emit(group.children, identity, dst)
        if not group.shortcut_first:
            self.shortcut(group, identity, shortcut)
        self.forward_lines.append(f"{dst} = {dst} + {shortcut}")

    def shortcut(self, group: Group, src: str, dst: str) -> None:
        if src != dst:
            self.forward_lines.append(f"{dst} = {src}")
        for layer in group.shortcut_layers:
            self.layer(layer, dst, dst)

    def concat(self, group: Group, src: str, dst: str) -> None:
        sources = [src] * len(group.children)
        if group.split and len(sources) > 1:  # each branch its slice: `part, part_1 = x.chunk(2, dim=1)`
            sources = [self.locals.fresh("part") for _ in sources]
            self.forward_lines.append(f"{', '.join(sources)} = {src}.chunk({len(sources)}, dim=1)")
        elif src == dst:
            sources = [self.locals.fresh("branch_input")] * len(sources)
            self.forward_lines.append(f"{sources[0]} = {src}")
        outs = []
        for child, source in zip(group.children, sources, strict=True):
            out = self.locals.fresh("branch")
            self.emit([child], source, out)
            outs.append(out)
        self.forward_lines.append(f"{dst} = torch.cat([{', '.join(outs)}], dim=1)")

    def gate(self, group: Group, src: str, dst: str) -> None:
        """Squeeze-and-excitation: the body computes a scale from x, and x is multiplied by it."""
        gated = self.locals.fresh("gate_input")
        self.forward_lines.append(f"{gated} = {src}")
        self.emit(group.children, gated, dst)
        self.forward_lines.append(f"{dst} = {dst} * {gated}")

    def train_method(self) -> list[str]:
        """`train()` that leaves frozen batchnorms in eval mode, or nothing where there are none.

        requires_grad=False alone would still let a batchnorm in train mode update its running
        statistics and normalise by the batch's: not what fine-tuning with a frozen one expects.
        """
        if not self.frozen_norms:
            return []
        return [
            "",
            "    def train(self, mode=True):",
            "        # Frozen batchnorms keep their running mean and variance: they stay in eval mode while the rest trains.",
            "        super().train(mode)",
            *(f"        {line}" for line in self.frozen_norms),
            "        return self",
        ]

    # ---- the file ----------------------------------------------------------------------------

    def assemble(self) -> str:
        net = self.network
        out = [
            f'"""{_docstring_text(net.name)}, compiled by specc from {_docstring_text(net.source_path)}. Needs only torch.',
            "",
            f"Input: {shape_text(net.input_shape)} per sample; output: {shape_text(net.output_shape)}.",
            f"Build it with `{self.name}()`; run this file to try it on a random batch.",
            '"""',
            "",
            "import torch",
            "from torch import nn",
        ]
        if self.uses_pad:
            out.append("from torch.nn import functional as F")
        out += ["", f"INPUT_SHAPE = {tuple(net.input_shape)!r}", ""]
        for helper in sorted(self.helpers):
            out += ["", HELPERS[helper], ""]
        if net.init in _INIT_FUNCTIONS:
            out += ["", _INIT_FUNCTIONS[net.init], ""]
        out += ["", f"class {self.name}(nn.Module):", "    def __init__(self):", "        super().__init__()"]
        out += [f"        {line}" for line in self.init_lines]
        if net.init in _INIT_FUNCTIONS:
            out.append("        init_weights(self)")
        out += [f"        {line}" for line in self.frozen]
        if self.frozen_norms:
            out.append("        self.train()  # so that frozen batchnorms start in eval mode too")
        out += self.train_method()
        out += ["", "    def forward(self, x):"]
        out += [f"        {line}" for line in self.forward_lines]
        out += [
            "",
            "",
            'if __name__ == "__main__":',
            f"    model = {self.name}()",
            "    batch = torch.randn(2, *INPUT_SHAPE)",
            '    print(model(batch).shape, sum(p.numel() for p in model.parameters()), "parameters")',
            "",
        ]
        return "\n".join(out)
