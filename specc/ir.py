"""The network as the backends see it: named layers with every figure resolved.

The expander builds this tree (names, kinds, arguments); the checker fills in
shapes and counts. A `Layer` is one module of the compiled network; a `Group`
is structure around layers: a block call, a repeat, a `seq`, a residual or a
concat. Groups with a `scope` open a namespace (`layer1.0.conv1`); the others
are control flow only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import Span
from .layers import LayerKind

Shape = tuple[int, ...]


@dataclass
class Layer:
    path: tuple[str, ...]
    kind: LayerKind
    args: dict[str, Any]
    span: Span  # the layer's keyword, where carets point
    line: int
    frozen: bool = False
    arg_spans: dict[str, Span] = field(default_factory=dict)
    calls: list[tuple[str, Span]] = field(default_factory=list)  # the block calls this layer came through
    # filled in by the checker
    in_shape: Shape | None = None
    out_shape: Shape | None = None
    params: int = 0
    macs: int = 0
    receptive_field: int = 0
    formula: str | None = None

    @property
    def name(self) -> str:
        return ".".join(self.path)


@dataclass
class Group:
    kind: str  # block | repeat | seq | residual | concat
    title: str  # what the table shows: "basic(64)", "residual", "x2"
    path: tuple[str, ...]  # its namespace, or the enclosing one where it opens none
    children: list[Node]
    span: Span
    line: int
    frozen: bool = False
    calls: list[tuple[str, Span]] = field(default_factory=list)
    scoped: bool = True  # opens a namespace of its own
    shortcut: str = "identity"  # residual only: identity | project | auto
    shortcut_name: str = ""  # residual only: the namespace a projection lives in
    # filled in by the checker
    shortcut_layers: list[Layer] = field(default_factory=list)
    in_shape: Shape | None = None
    out_shape: Shape | None = None
    receptive_field: int = 0

    @property
    def name(self) -> str:
        return ".".join(self.path)

    def layers(self) -> Iterator[Layer]:
        yield from walk_layers(self.children)
        yield from self.shortcut_layers

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers())

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers())


Node = Layer | Group


def walk_layers(nodes: list[Node]) -> Iterator[Layer]:
    """Every layer in execution order; a residual's shortcut comes after its body."""
    for node in nodes:
        if isinstance(node, Layer):
            yield node
        else:
            yield from node.layers()


@dataclass
class Network:
    name: str
    input_shape: Shape
    body: list[Node]
    init: str = "default"
    train: dict[str, Any] = field(default_factory=dict)
    source_text: str = ""
    source_path: str = "<string>"

    def layers(self) -> list[Layer]:
        return list(walk_layers(self.body))

    @property
    def output_shape(self) -> Shape | None:
        layers = self.body
        return layers[-1].out_shape if layers else self.input_shape
