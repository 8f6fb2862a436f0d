"""What a layer kind is: its fields, what it infers, and the facts the stages ask it.

specc/layers.py and specc/windows.py declare the kinds on this base; nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

Shape = tuple[int, ...]
Pads = tuple[tuple[int, int], ...]
REQUIRED = object()


class ShapeError(Exception):
    """A layer cannot take the shape it is given.

    `field` names the argument to point at. `recover` is the shape the layer would give all the
    same (fc's K outputs, say), so that the checker can go on and report later mistakes too.
    """

    def __init__(self, message: str, hint: str, field: str | None = None, recover: Shape | None = None):
        super().__init__(message)
        self.message, self.hint, self.field, self.recover = message, hint, field, recover


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # int | number | bool | word | pad
    default: Any = REQUIRED
    help: str = ""
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    below: float | None = None  # exclusive upper bound
    positional: bool = False  # may be written without `name=` (`fc 10`, `pool max`)

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class Inferred:
    shape: Shape
    params: int = 0
    macs: int = 0
    # (effective filter, stride) for the receptive field, in input positions; an upsampling layer's
    # stride is a Fraction below one
    window: tuple[int, Any] | None = None
    sees_whole_map: bool = False
    formula: str | None = None
    warning: str | None = None
    # (before, after) per spatial axis, where the kind pads: resolved here once (`P=same` depends on
    # the input), kept in the IR and read by the code generator
    pads: Pads = ()


class LayerKind:
    name: ClassVar[str]
    short: ClassVar[str]  # base of automatic names: conv1, bn1, fc1
    fields: ClassVar[tuple[Field, ...]] = ()
    help: ClassVar[str] = ""
    example: ClassVar[str] = ""  # a line a hint may show; the kind's name alone where it needs no argument
    aliases: ClassVar[dict[str, str]] = {}  # what users of other frameworks write -> what specc calls it
    # It normalises by the batch's statistics while training and keeps running ones for eval: a frozen
    # one stays in eval mode, and it cannot train on one value per channel.
    batch_statistics: ClassVar[bool] = False
    # Its parameters (by attribute name on the torch module) that get weight decay; biases, norm and
    # scale factors do not, as in timm.
    decays: ClassVar[tuple[str, ...]] = ()

    def infer(self, a: dict[str, Any], x: Shape) -> Inferred:
        return Inferred(x)

    def title(self, a: dict[str, Any]) -> str:
        """What the table's kind column shows."""
        return self.name

    def hint_example(self) -> str:
        return self.example or self.name

    def torch(self, a: dict[str, Any], x: Shape, pads: Pads) -> str:
        """The PyTorch constructor, as source text; `pads` as `infer` resolved them for input `x`."""
        raise NotImplementedError

    def explicit_pad(self, pads: Pads) -> tuple[int, ...] | None:
        """F.pad amounts the forward applies before the module, where the module cannot pad itself."""
        return None

    def defaults(self) -> dict[str, Any]:
        """The value of every field that has a default: what a layer written without it gets."""
        return {f.name: f.default for f in self.fields if not f.required}

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


def dims(x: Shape) -> int:
    """Spatial axes of a sample shape: 1 for C×L, 2 for C×H×W, 3 for C×D×H×W."""
    return len(x) - 1


def kwargs_text(**pairs) -> str:
    """`, stride=2, padding=1`: the keyword arguments of a constructor call that are not None."""
    return "".join(f", {k}={v!r}" for k, v in pairs.items() if v is not None)
