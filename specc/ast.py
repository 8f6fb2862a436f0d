"""The syntax tree of a .cnn file, as the parser builds it: no meaning yet.

Every node carries the `Span` of its source text so that any later stage can
point at it. Nodes are plain immutable records: built with keywords
(`Num(span=s, value=3)`), equal when their fields are, printed with their
fields. The parser's output is trusted and nothing dumps a tree, so nodes
validate nothing: pydantic models cost a whole `specc check` about half its run
time in imports alone, and a dataclass costs most of a millisecond to create.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from .errors import Span


class Record:
    """A record with keyword construction, value equality and no assignment after construction.

    Fields are the annotated names of the class and its bases, in order; a field given a value in
    the class body is optional, and a list default is copied for each record.
    """

    _fields: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls) -> None:
        own = [name for name, hint in cls.__dict__.get("__annotations__", {}).items() if not str(hint).startswith("ClassVar")]
        cls._fields = cls._fields + tuple(name for name in own if name not in cls._fields)
        cls._defaults = cls._defaults | {name: cls.__dict__[name] for name in own if name in cls.__dict__}

    def __init__(self, **values: Any) -> None:
        unknown = values.keys() - set(self._fields)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {', '.join(sorted(unknown))}")
        for name in self._fields:
            if name in values:
                value = values[name]
            elif name in self._defaults:
                value = self._defaults[name]
                value = list(value) if isinstance(value, list) else value
            else:
                raise TypeError(f"{type(self).__name__} needs a value for {name!r}")
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: build a new one rather than setting {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: {name!r} cannot be deleted")

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:  # like a tuple: a record holding a list has no hash
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{name}={getattr(self, name)!r}' for name in self._fields)})"


class Node(Record):
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


class Spec(Record):
    """A whole file. Header statements may appear once each, anywhere before use."""

    network: Name | None = None
    input_shape: tuple[int, ...] | None = None
    input_span: Span | None = None
    init: Name | None = None
    train: list[Setting] = []
    train_span: Span | None = None
    blocks: list[BlockDef] = []
    body: list[Statement] = []
