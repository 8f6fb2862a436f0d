"""The syntax tree of a .cnn file, as the parser builds it: no meaning yet.

Every node carries the `Span` of its source text so that any later stage can
point at it. Nodes are pydantic models, so a tree built by hand is validated
and any tree dumps to JSON (`model_dump()`). The parser, whose output is
trusted, builds them with `model_construct` and the schemas are built only on
first validation (`defer_build`): building them at import would cost `specc
check` a third of its run time.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from .errors import Span


class Node(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, defer_build=True)
    span: Span


# ---- values ---------------------------------------------------------------


class Num(Node):
    kind: Literal["num"] = "num"
    value: int | float


class Ref(Node):
    """A bare word: a block parameter where one is in scope, else a word such as `same` or `max`."""

    kind: Literal["ref"] = "ref"
    name: str


class Str(Node):
    kind: Literal["str"] = "str"
    value: str


class Sizes(Node):
    """`3x3` where one number belongs: kept so that the expander can say why it is wrong."""

    kind: Literal["sizes"] = "sizes"
    values: tuple[int, ...]


class BinOp(Node):
    kind: Literal["binop"] = "binop"
    op: Literal["+", "-", "*", "/"]
    left: Expr
    right: Expr


class Neg(Node):
    kind: Literal["neg"] = "neg"
    operand: Expr


Expr = Num | Ref | Str | Sizes | BinOp | Neg


class Name(Node):
    """An identifier together with where it was written."""

    text: str


class Arg(Node):
    """`value` (positional) or `key=value`."""

    key: Name | None = None
    value: Expr


# ---- statements -------------------------------------------------------------


class Statement(Node):
    """One layer, block call or group; the expander decides which.

    `conv K=16 F=5`          name=conv, items=[K=16, F=5]
    `stem: basic(64) x2`     label=stem, name=basic, call_args=[64], repeat=Num(2)
    `basic(K) x N`           name=basic, call_args=[K], repeat=Ref(N)
    `residual { ... }`       name=residual, body=[...]; a repeat may follow the '}'
    """

    label: Name | None = None
    name: Name
    call_args: list[Arg] | None = None
    items: list[Arg] = []
    repeat: Expr | None = None  # the count: a number, or a value of block parameters
    repeat_span: Span | None = None  # the whole `x2` or `x N`
    body: list[Statement] | None = None


class Param(Node):
    name: Name
    default: Expr | None = None


class BlockDef(Node):
    name: Name
    params: list[Param]
    body: list[Statement]


class Setting(Node):
    key: Name
    value: Expr


class Spec(BaseModel):
    """A whole file. Header statements may appear once each, anywhere before use."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, defer_build=True)
    network: Name | None = None
    input_shape: tuple[int, ...] | None = None
    input_span: Span | None = None
    init: Name | None = None
    train: list[Setting] = []
    train_span: Span | None = None
    blocks: list[BlockDef] = []
    body: list[Statement] = []
