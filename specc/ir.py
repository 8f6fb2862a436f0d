"""The network as the backends see it: named layers with every figure resolved.

The expander builds this tree (names, kinds, arguments); the checker fills in
shapes and counts. A `Layer` is one module of the compiled network; a `Group`
is structure around layers: a block call, a repeat, a `seq`, a residual, a
concat or a gate. Groups with a `scope` open a namespace (`layer1.0.conv1`); the others
are control flow only.
"""

from __future__ import annotations

import keyword
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import Span
from .kind import Pads
from .layers import LayerKind

Shape = tuple[int, ...]

# Attributes of nn.Module and nn.ModuleDict: a layer named like one cannot be registered.
RESERVED = frozenset(
    "T_destination add_module apply bfloat16 buffers call_super_init children clear compile cpu cuda double dump_patches eval "
    "extra_repr float forward get_buffer get_extra_state get_parameter get_submodule half ipu items keys load_state_dict modules "
    "mtia named_buffers named_children named_modules named_parameters parameters pop register_backward_hook register_buffer "
    "register_forward_hook register_forward_pre_hook register_full_backward_hook register_full_backward_pre_hook "
    "register_load_state_dict_post_hook register_load_state_dict_pre_hook register_module register_parameter "
    "register_state_dict_post_hook register_state_dict_pre_hook requires_grad_ set_extra_state set_submodule share_memory "
    "state_dict to to_empty train training type update values xpu zero_grad".split()
)


def module_name_problem(name: str, top_level: bool) -> tuple[str, str] | None:
    """Why `name`, given by the user, cannot name a module of the compiled network: (message, hint).

    A top-level name becomes an attribute (`self.stem`), so it must be a Python name; a nested one
    is a ModuleDict key (`self.layer1["0"]`), which any word or number may be. Neither may be an
    attribute nn.Module or nn.ModuleDict has already, and those include the private ones (`_modules`).
    """
    if name in RESERVED:
        return (
            f"the name '{name}' cannot name a PyTorch module",
            f"PyTorch's modules already have a method or attribute '{name}'; choose another name",
        )
    if name.startswith("_"):
        return (
            f"the name '{name}' cannot name a PyTorch module",
            "nn.Module keeps its own state under names that start with '_'; start it with a letter",
        )
    if top_level and not name.isidentifier():
        return (
            f"'{name}' cannot name a layer at the top level",
            f"it becomes an attribute of the model, so it must start with a letter, e.g. layer{name}",
        )
    if top_level and keyword.iskeyword(name):
        return (
            f"'{name}' cannot name a layer at the top level: it is a Python keyword",
            f"it becomes an attribute of the model; write e.g. {name}_",
        )
    return None


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
    pads: Pads = ()  # resolved padding, (before, after) per spatial axis, where the kind pads

    @property
    def name(self) -> str:
        return ".".join(self.path)


@dataclass
class Group:
    kind: str  # block | repeat | seq | residual | concat | gate | unknown (a statement that did not expand)
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
    shortcut_first: bool = False  # residual only: the projection is built (and its tensors listed) before the body
    split: bool = False  # concat only: branch i takes the i-th equal slice of the channels
    # The expander reported an error here, so what comes out is unknown: the checker checks the
    # layers inside (their input is known) but nothing after, so no error follows from the first.
    failed: bool = False
    # residual only, where the shortcut is not identity: the 1×1 conv and batchnorm that project x;
    # their K and S follow the body's shape, so the checker fills them in
    projection: list[Layer] = field(default_factory=list)
    # filled in by the checker
    projects: bool = False  # the projection is used: `project`, or `auto` where the shapes differ
    in_shape: Shape | None = None
    out_shape: Shape | None = None
    receptive_field: int = 0

    @property
    def name(self) -> str:
        return ".".join(self.path)

    @property
    def shortcut_layers(self) -> list[Layer]:
        return self.projection if self.projects else []

    def layers(self) -> Iterator[Layer]:
        if self.shortcut_first:
            yield from self.shortcut_layers
        yield from walk_layers(self.children)
        if not self.shortcut_first:
            yield from self.shortcut_layers

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers())

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers())


Node = Layer | Group


def walk_layers(nodes: list[Node]) -> Iterator[Layer]:
    """Every layer in execution order; a residual's shortcut comes after its body unless `shortcut_first`."""
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
    train: dict[str, Any] = field(default_factory=dict)  # the train section, checked: by setting name (train_settings.py)
    source_text: str = ""
    source_path: str = "<string>"

    def layers(self) -> list[Layer]:
        return list(walk_layers(self.body))

    @property
    def output_shape(self) -> Shape | None:
        layers = self.body
        return layers[-1].out_shape if layers else self.input_shape

    @property
    def final_layer(self) -> Layer | None:
        """The last layer the network runs, through block calls, repeats and seqs (not inside a residual or concat)."""
        node = self.body[-1] if self.body else None
        while isinstance(node, Group) and node.kind in ("block", "repeat", "seq") and node.children:
            node = node.children[-1]
        return node if isinstance(node, Layer) else None

    @property
    def final_activation(self) -> str | None:
        """'softmax' or 'sigmoid' where that is the last thing the network does, else None.

        The one answer to "does it end in softmax": the loss folds it in, export says whether
        the graph's outputs are probabilities, and predict reads them accordingly.
        """
        last = self.final_layer
        return last.kind.name if last is not None and last.kind.name in ("softmax", "sigmoid") else None
