"""Values and arguments: arithmetic, a block call's arguments bound, each layer argument checked against its field.

The expander reads these as methods (`Arguments` is its base class), so that every error goes
into its one sink (`diagnostics`), with the notes of the block calls a value came through.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import ast
from .errors import Span
from .layers import KINDS, Field
from .suggest import did_you_mean

if TYPE_CHECKING:
    from .expand import Context

MAX_INT = 2**63 - 1  # torch sizes are int64
MAX_BITS = 1024  # arithmetic results beyond this are refused at once, far past MAX_INT yet cheap to print
MAX_ERRORS = 50  # then expansion stops: a line of thousands of bad arguments says enough in fifty


class StopExpanding(Exception):  # noqa: N818 - a signal, not an error
    """Expansion stops: the spec grows past the expander's MAX_NODES, or past MAX_ERRORS."""


@dataclass(frozen=True)
class Value:
    value: Any  # int | float | str
    span: Span
    word: bool = False  # a bare name such as `same`, as opposed to a "string"
    failed: bool = False  # arithmetic that was reported (1/0): its uses stay silent, so no follow-on errors


class Arguments:
    """Values evaluated, block calls bound, layer arguments converted.

    The Expander's base, which provides `diagnostics`, `too_many_errors`, `source` and `blocks`.
    """

    def evaluate(self, expr: ast.Expr, env: dict[str, Value], calls=()) -> Value:
        """A value: a number, a word, a string, or arithmetic on numbers and block parameters."""
        if isinstance(expr, ast.Num | ast.Str):
            return Value(expr.value, expr.span)
        if isinstance(expr, ast.Sizes):
            return Value(expr.values, expr.span)
        if isinstance(expr, ast.Ref):
            return env.get(expr.name) or Value(expr.name, expr.span, word=True)
        failed = Value(None, expr.span, failed=True)
        if isinstance(expr, ast.Neg):
            inner = self._number(self.evaluate(expr.operand, env, calls), "-", calls)
            return failed if inner is None else Value(-inner, expr.span)
        left, right = self.evaluate(expr.left, env, calls), self.evaluate(expr.right, env, calls)
        a, b = self._number(left, expr.op, calls), self._number(right, expr.op, calls)
        if a is None or b is None:
            return failed
        if expr.op == "/" and b == 0:
            self.diagnostics.error("division by zero", expr.span, "the number after '/' is 0 here; divide by something else", calls)
            return failed
        try:
            result = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a // b if a % b == 0 else a / b}[expr.op]()
            too_large = isinstance(result, int) and result.bit_length() > MAX_BITS
        except OverflowError:
            too_large = True
        if too_large:  # nested blocks can square a number at every level: stop before its digits run to millions
            self.diagnostics.error(
                "this number is too large to work with", expr.span, "sizes are 64-bit integers in torch: is a digit too many?", calls
            )
            return failed
        return Value(result, expr.span)

    def _number(self, value: Value, op: str, calls) -> int | float | None:
        """The number in `value`, or None where it holds none (reported here, unless already reported)."""
        if value.failed:
            return None
        if isinstance(value.value, (int, float)) and not value.word:
            return value.value
        self.diagnostics.error(
            f"'{value_text(value.value)}' is not a number, so '{op}' cannot apply to it",
            value.span,
            "arithmetic works on numbers and on block parameters that hold numbers",
            calls,
        )
        return None

    def repeat_count(self, expr: ast.Expr, where: Span, ctx: Context, most: int) -> int | None:
        """How many copies `x N` makes, or None after reporting why it cannot.

        A count written as a number is at least 1 (`x0` is a line to delete); one computed from
        block parameters may be 0, as `x N-1` is for a stage of one block.
        """
        value = self.evaluate(expr, ctx.env, ctx.calls)
        v, literal = value.value, isinstance(expr, ast.Num)
        if value.failed:
            return None
        notes = [(f"block '{ctx.blocks[-1]}' repeats by it here", where)] if value.span != expr.span and ctx.blocks else []
        if value.word or not isinstance(v, int | float):
            name = v if value.word else "N"
            hint = f"a count given by name is a block parameter: block stage(K, {name}) {{ ... x {name} }}"
            if notes:
                hint = f"block '{ctx.blocks[-1]}' repeats by this argument: pass a whole number, such as 2"
            elif value.word and ctx.blocks:
                block = ctx.blocks[-1]
                params = ", ".join([p.name.text for p in self.blocks[block].params] + [v])
                hint = f"'{v}' is not a parameter of block '{block}'; add it, as in block {block}({params})"
            self.diagnostics.error(f"a repeat count must be a whole number, got '{value_text(v)}'", value.span, hint, ctx.calls, notes)
            return None
        if isinstance(v, float):
            near = " or ".join(f"x{n}" for n in sorted({max(math.floor(v), 0), max(math.ceil(v), 0)})) if math.isfinite(v) else "x2"
            hint = f"block '{ctx.blocks[-1]}' repeats by this argument: pass a whole number" if notes else f"write e.g. {near}"
            self.diagnostics.error(f"a repeat count must be a whole number, got {_short(v)}", value.span, hint, ctx.calls, notes)
            return None
        low = 1 if literal else 0
        if not low <= v <= most:
            what = f"between {low} and {most:,}" if v >= 0 else f"{low} or more"
            hint = f"block '{ctx.blocks[-1]}' repeats by this argument: pass 0 or more" if notes else "write a count such as x2"
            if literal:
                hint += "; to drop the layer, delete the line"
            self.diagnostics.error(f"a repeat count must be {what}, got {_short(v)}", value.span, hint, ctx.calls, notes)
            return None
        return v

    # ---- arguments of layers and groups -------------------------------------------------

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
        v = value.value
        if value.failed:
            return _BAD
        if isinstance(v, tuple) and fld.type not in ("bool", "word"):
            message, hint = _one_number(what, fld, v)
            return self._bad(message, value, use, hint)
        if fld.type == "bool":
            if value.word and (v in ("true", "false") or v == fld.name):
                return v != "false"
            hint = (value.word and did_you_mean(str(v), ["true", "false"])) or f"write {fld.name}=true or {fld.name}=false"
            return self._bad(f"{what} {fld.name} is true or false, got '{value_text(v)}'", value, use, hint)
        if fld.type in ("word", "pad") and value.word:
            if v in fld.choices:
                return v
            hint = did_you_mean(v, fld.choices) or f"choose one of {', '.join(fld.choices)}"
            return self._bad(f"{what} {fld.name} cannot be '{v}'", value, use, hint)
        if fld.type == "word" or value.word or isinstance(v, str):
            expected = {"int": "a whole number", "number": "a number"}.get(fld.type, fld.help)
            hint = f"{fld.name}: {fld.help}"
            if value.word and fld.type != "word" and use.ctx.blocks:
                hint += f"; '{v}' is not a parameter of block '{use.ctx.blocks[-1]}'"
            elif fld.type != "word":
                hint += f"; write e.g. {fld.name}={_example_value(fld)}"
            return self._bad(f"{what} {fld.name} must be {expected}, got '{value_text(v)}'", value, use, hint)
        if (isinstance(v, float) and not math.isfinite(v)) or abs(v) > MAX_INT:
            return self._bad(f"{what} {fld.name} is too large: {_short(v)}", value, use, _range_hint(fld))
        if fld.type in ("int", "pad") and not isinstance(v, int):
            return self._bad(f"{what} {fld.name} must be a whole number, got {_short(v)}", value, use, _whole_hint(fld, v))
        minimum = 0 if fld.type == "pad" else fld.minimum
        if minimum is not None and v < minimum:
            return self._bad(f"{what} {fld.name} must be at least {minimum:g}, got {v}", value, use, _range_hint(fld))
        if fld.below is not None and v >= fld.below:
            return self._bad(f"{what} {fld.name} must be below {fld.below:g}, got {v}", value, use, _range_hint(fld))
        return v

    def _bad(self, message: str, value: Value, use: _Use, hint: str):
        """Report a bad argument at its value; where a block call passed it in, also show where it is used."""
        notes = []
        if use.item.value.span != value.span and use.ctx.blocks:
            notes.append((f"block '{use.ctx.blocks[-1]}' passes it to {use.what} as {use.field} here", use.item.span))
        self.diagnostics.error(message, value.span, hint, use.ctx.calls, notes)
        return _BAD

    # ---- block calls ------------------------------------------------------------------------

    def bind(self, block: ast.BlockDef, args: list[ast.Arg], ctx: Context, where: Span) -> dict[str, Value] | None:
        """Block parameters bound to the call's arguments, as Python binds them; None after an error."""
        name, params = block.name.text, {p.name.text: p for p in block.params}
        env: dict[str, Value] = {}
        ok = True
        for i, arg in enumerate(args):
            key = self._parameter_for(block, args, i, ctx)
            if key is None:
                ok = False
                continue
            if key in env:
                hint = f"pass {key} once, by position or as {key}=…, not both"
                self.diagnostics.error(f"'{name}' gets '{key}' twice", (arg.key or arg).span, hint, ctx.calls)
                ok = False
            env[key] = self.evaluate(arg.value, ctx.env, ctx.calls)
        for key, param in params.items():
            if key in env:
                continue
            if (name, key) in self.bad_defaults:
                ok = False  # reported once, at the block's definition
                continue
            if param.default is not None:
                env[key] = self.evaluate(param.default, env, ctx.calls)
                continue
            self.diagnostics.error(
                f"'{name}' needs the argument '{key}'",
                where,
                f"call it as {name}({', '.join(_param_text(p) for p in block.params)})",
                ctx.calls,
                [(f"'{key}' is declared here, without a default", param.name.span)],
            )
            ok = False
        return env if ok else None

    def _parameter_for(self, block: ast.BlockDef, args: list[ast.Arg], i: int, ctx: Context) -> str | None:
        """The parameter that the i-th argument of a call binds, or None after reporting why none."""
        name, order, arg = block.name.text, [p.name.text for p in block.params], args[i]
        if arg.key is not None:
            if arg.key.text in order:
                return arg.key.text
            hint = did_you_mean(arg.key.text, order) or f"its parameters are: {', '.join(order) or 'none'}"
            self.diagnostics.error(f"'{name}' has no parameter '{arg.key.text}'", arg.key.span, hint, ctx.calls)
            return None
        if any(a.key is not None for a in args[:i]):
            self.diagnostics.error(
                "a positional argument cannot follow a key=value argument", arg.span, "put positional arguments first", ctx.calls
            )
            return None
        if i >= len(order):
            taken = f"{len(order)} argument{'s' * (len(order) != 1)}" + (f" ({', '.join(order)})" if order else "")
            hint = f"call it as {name}({', '.join(_param_text(p) for p in block.params)})"
            self.diagnostics.error(f"'{name}' takes {taken}, but this is argument {i + 1}", arg.span, hint, ctx.calls)
            return None
        return order[i]


@dataclass(frozen=True)
class _Use:
    """Where a layer argument is written: to point at it when the value came from a block call."""

    ctx: Context
    item: ast.Arg
    what: str
    field: str


_BAD = object()


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


def value_text(value: Any) -> str:
    """A value as the user would write it: shapes as 3x3."""
    return "x".join(map(str, value)) if isinstance(value, tuple) else str(value)


def kind_example(word: str) -> str:
    return KINDS[word].hint_example() if word in KINDS else {"residual": "residual {"}.get(word, word)


def _short(v: int | float) -> str:
    text = repr(v) if isinstance(v, float) else str(v)  # as written: 2.0, not 2
    return text if len(text) < 24 else f"{text[:10]}…({len(text)} digits)"


def _param_text(param: ast.Param) -> str:
    return param.name.text if param.default is None else f"{param.name.text}=…"
