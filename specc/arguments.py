"""Layer and group arguments, each checked against its field and converted by the field's type.

One converter per field type (CONVERTERS) gives the value or the Problem with it, and the hint
builders below say how to fix it. The expander reads `arguments` as a method (`Arguments` is its
base class), so that every error goes into its one sink, with the notes of the block calls a value
came through.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from . import ast
from .errors import Span
from .layers import KINDS, Field
from .suggest import did_you_mean
from .values import MAX_INT, StopExpanding, Value, Values, number_text, value_text

if TYPE_CHECKING:
    from .scopes import Context


GROUP_FIELDS = {
    "seq": (),
    "concat": (Field("split", "bool", False, "branch i takes the i-th equal slice of the channels", positional=True),),
    "residual": (
        Field("shortcut", "word", "identity", "identity, project or auto", ("identity", "project", "auto"), positional=True),
        Field("drop", "number", 0.0, "the chance that training skips the body, per sample (stochastic depth)", minimum=0, below=1),
        Field("shortcut_first", "bool", False, "the projection's layers and tensors come before the body's, as in torchvision's RegNet"),
    ),
    "gate": (),  # x times its body's output: squeeze-and-excitation
}


class Arguments(Values):
    """Layer arguments checked and converted: the Expander's base, which provides `diagnostics`,
    `too_many_errors` and `source`."""

    def arguments(self, what: str, fields: tuple[Field, ...], items: list[ast.Arg], ctx: Context, where: Span):
        """Check a layer's arguments against its fields: ({name: value}, {name: span}) or None."""
        args: dict[str, Any] = {}
        spans: dict[str, Span] = {}
        bad: set[str] = set()  # given, but wrong: not also "missing"
        skip = False
        for i, item in enumerate(items):
            if self.too_many_errors():  # a line of thousands of bad arguments: enough said
                raise StopExpanding
            if skip:  # the value of `K 16`, reported with its K
                skip = False
                continue
            value = self.evaluate(item.value, ctx.env, ctx.calls)
            if self._missing_equals(what, fields, item, value, items[i + 1 : i + 2], ctx):
                bad.add(str(value.value))
                skip = i + 1 < len(items) and items[i + 1].key is None
                continue
            fld = self._field_for(what, fields, item, value, args, ctx)
            if fld is None:
                bad.add("")
                continue
            converted = self._convert(what, fld, value, _Use(ctx, item, what, fld.name))
            if converted is _BAD:
                bad.add(fld.name)
                continue
            args[fld.name], spans[fld.name] = converted, value.span
        for fld in fields:
            if fld.name not in args and fld.name not in bad:
                if fld.required:
                    self.diagnostics.error(f"{what} needs {fld.name} ({fld.help})", where, f"write e.g. `{kind_example(what)}`", ctx.calls)
                    bad.add(fld.name)
                args[fld.name] = fld.default
        return (args, spans) if not bad else None

    def _missing_equals(self, what, fields, item: ast.Arg, value: Value, following: list[ast.Arg], ctx) -> bool:
        """`conv K 16`: an argument's name without its '='. Reported, with the value that follows."""
        if not value.word or item.key is not None or not any(f.name == value.value and f.type != "bool" for f in fields):
            return False
        if following and following[0].key is None:
            after = following[0]
            example = self.source.line_text(after.span.line)[after.span.column - 1 : after.span.end_column - 1]
            span = value.span.until(after.span) if after.span.line == value.span.line else value.span
            self.diagnostics.error(f"'{value.value}' needs a '=' before its value", span, f"write {value.value}={example}", ctx.calls)
        else:
            self.diagnostics.error(f"'{value.value}' needs a value", value.span, f"write {value.value}=…", ctx.calls)
        return True

    def _field_for(self, what, fields, item: ast.Arg, value: Value, args, ctx) -> Field | None:
        if item.key is not None:
            fld = next((f for f in fields if f.name == item.key.text), None)
            if fld is None:
                names = [f.name for f in fields]
                hint = did_you_mean(item.key.text, names) or (
                    f"{what} takes: {', '.join(names)}" if names else f"{what} takes no arguments"
                )
                self.diagnostics.error(f"{what} has no argument '{item.key.text}'", item.key.span, hint, ctx.calls)
            elif fld.name in args:
                self.diagnostics.error(f"{fld.name} is given twice", item.key.span, f"give {fld.name} once: remove one of them", ctx.calls)
                return None
            return fld
        if value.word:
            for fld in fields:
                if value.value in fld.choices or (fld.type == "bool" and fld.name == value.value):
                    if fld.name in args:
                        self.diagnostics.error(f"{what} {fld.name} is given twice", value.span, f"{fld.name}: {fld.help}", ctx.calls)
                        return None
                    return fld
        for fld in fields:
            if fld.positional and fld.name not in args and not fld.choices and fld.type != "bool":
                return fld
        if value.failed:
            return None
        names = [f.name for f in fields]
        hint = f"{what} takes: {', '.join(names)}" if names else f"{what} takes no arguments"
        if value.word:
            hint = did_you_mean(str(value.value), [c for f in fields for c in f.choices] + names + ["freeze"]) or hint
        self.diagnostics.error(f"{what} does not take '{value_text(value.value)}' here", value.span, hint, ctx.calls)
        return None

    def _convert(self, what: str, fld: Field, value: Value, use: _Use):
        """The value a field takes, by the field's type (CONVERTERS); _BAD after reporting why not."""
        if value.failed:
            return _BAD
        converted = CONVERTERS[fld.type](what, fld, value, use.ctx.blocks)
        if isinstance(converted, Problem):
            return self._bad(converted.message, value, use, converted.hint)
        return converted

    def _bad(self, message: str, value: Value, use: _Use, hint: str):
        """Report a bad argument at its value; where a block call passed it in, also show where it is used."""
        notes = []
        if use.item.value.span != value.span and use.ctx.blocks:
            notes.append((f"block '{use.ctx.blocks[-1]}' passes it to {use.what} as {use.field} here", use.item.span))
        self.diagnostics.error(message, value.span, hint, use.ctx.calls, notes)
        return _BAD


@dataclass(frozen=True)
class _Use:
    """Where a layer argument is written: to point at it when the value came from a block call."""

    ctx: Context
    item: ast.Arg
    what: str
    field: str


_BAD = object()


class Problem(NamedTuple):
    """Why a value does not fit a field: what a converter returns instead of the value."""

    message: str
    hint: str


# ---- one converter per field type: the value, or the Problem --------------------------------


def _to_bool(what: str, fld: Field, value: Value, blocks: tuple[str, ...]) -> bool | Problem:
    v = value.value
    if value.word and (v in ("true", "false") or v == fld.name):
        return v != "false"
    hint = (value.word and did_you_mean(str(v), ["true", "false"])) or f"write {fld.name}=true or {fld.name}=false"
    return Problem(f"{what} {fld.name} is true or false, got '{value_text(v)}'", hint)


def _to_word(what: str, fld: Field, value: Value, blocks: tuple[str, ...]) -> str | Problem:
    if not value.word:
        return Problem(f"{what} {fld.name} must be {fld.help}, got '{value_text(value.value)}'", f"{fld.name}: {fld.help}")
    if value.value in fld.choices:
        return value.value
    hint = did_you_mean(value.value, fld.choices) or f"choose one of {', '.join(fld.choices)}"
    return Problem(f"{what} {fld.name} cannot be '{value.value}'", hint)


def _to_number(what: str, fld: Field, value: Value, blocks: tuple[str, ...]) -> int | float | Problem:
    """An int, number or pad field's number: one, not a word, finite, whole where it must be, in range."""
    v = value.value
    if isinstance(v, tuple):
        return Problem(*_one_number(what, fld, v))
    if value.word or isinstance(v, str):
        expected = {"int": "a whole number", "number": "a number"}.get(fld.type, fld.help)
        hint = f"{fld.name}: {fld.help}"
        if value.word and blocks:
            hint += f"; '{v}' is not a parameter of block '{blocks[-1]}'"
        else:
            hint += f"; write e.g. {fld.name}={_example_value(fld)}"
        return Problem(f"{what} {fld.name} must be {expected}, got '{value_text(v)}'", hint)
    if (isinstance(v, float) and not math.isfinite(v)) or abs(v) > MAX_INT:
        return Problem(f"{what} {fld.name} is too large: {number_text(v)}", _range_hint(fld))
    if fld.type in ("int", "pad") and not isinstance(v, int):
        return Problem(f"{what} {fld.name} must be a whole number, got {number_text(v)}", _whole_hint(fld, v))
    minimum = 0 if fld.type == "pad" else fld.minimum
    if minimum is not None and v < minimum:
        return Problem(f"{what} {fld.name} must be at least {minimum:g}, got {v}", _range_hint(fld))
    if fld.below is not None and v >= fld.below:
        return Problem(f"{what} {fld.name} must be below {fld.below:g}, got {v}", _range_hint(fld))
    return v


def _to_pad(what: str, fld: Field, value: Value, blocks: tuple[str, ...]) -> int | str | Problem:
    """conv's P: one of its words (same, valid, full), or a number of pixels."""
    return _to_word(what, fld, value, blocks) if value.word else _to_number(what, fld, value, blocks)


CONVERTERS = {"bool": _to_bool, "word": _to_word, "int": _to_number, "number": _to_number, "pad": _to_pad}


def _one_number(what: str, fld: Field, sizes: tuple[int, ...]) -> tuple[str, str]:
    """Message and hint for `F=3x3`: specc's windows are the same size along every axis."""
    shown = value_text(sizes)
    window = {("conv", "F"): "filter", ("pool", "F"): "window", ("conv", "S"): "stride", ("pool", "S"): "stride"}.get((what, fld.name))
    if window is None:
        return f"{what} {fld.name} takes one number, got {shown}", f"write one number, e.g. {fld.name}={sizes[0]}"
    message = f"{what} {fld.name} takes one number: the {window} is {fld.name}×{fld.name}, got {shown}"
    if len(set(sizes)) == 1:
        return message, f"write {fld.name}={sizes[0]}"
    return message, f"write one number, e.g. {fld.name}={sizes[0]}: the {window} is the same along every axis"


def _example_value(fld: Field) -> Any:
    """A plausible value to show in a hint: F=3, P=1, the field's default, or K=16."""
    if fld.name in ("F", "P", "drop"):
        return {"F": 3, "P": 1, "drop": 0.1}[fld.name]
    if isinstance(fld.default, int | float) and not isinstance(fld.default, bool):
        return fld.default
    return {"K": 16, "S": 2}.get(fld.name, 1)


def _whole_hint(fld: Field, v: float) -> str:
    """For a finite `v` within MAX_INT. `S=2.0` is not read as 2: a count is written as one."""
    if v.is_integer():
        return f"write {fld.name}={int(v)}, without the decimal point"
    near = [n for n in (math.floor(v), math.ceil(v)) if fld.minimum is None or n >= fld.minimum]
    return f"{fld.name} takes whole numbers ({fld.help}): e.g. " + " or ".join(f"{fld.name}={n}" for n in near)


def _range_hint(fld: Field) -> str:
    """What a number field takes, for a value out of its range: `K is the number of filters, e.g. K=16`."""
    example = f"e.g. {fld.name}={_example_value(fld)}"
    if fld.below is not None:
        low = 0 if fld.minimum is None else fld.minimum
        return f"{fld.name}: {fld.help}, from {low:g} up to (not including) {fld.below:g}; {example}"
    return f"{fld.name}: {fld.help}; {example}"


def kind_example(word: str) -> str:
    return KINDS[word].hint_example() if word in KINDS else {"residual": "residual {"}.get(word, word)
