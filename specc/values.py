"""Values: numbers, words and arithmetic on block parameters; repeat counts; a block call's arguments bound.

The expander reads these as methods (`Values` is a base class of it), so that every error goes into
its one sink (`diagnostics`), with the notes of the block calls a value came through.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import ast
from .errors import Span
from .suggest import did_you_mean

if TYPE_CHECKING:
    from .scopes import Context

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


class Values:
    """Values evaluated and block calls bound: a base of the Expander, which provides `diagnostics` and `blocks`."""

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
            self.diagnostics.error(f"a repeat count must be a whole number, got {number_text(v)}", value.span, hint, ctx.calls, notes)
            return None
        low = 1 if literal else 0
        if not low <= v <= most:
            what = f"between {low} and {most:,}" if v >= 0 else f"{low} or more"
            hint = f"block '{ctx.blocks[-1]}' repeats by this argument: pass 0 or more" if notes else "write a count such as x2"
            if literal:
                hint += "; to drop the layer, delete the line"
            self.diagnostics.error(f"a repeat count must be {what}, got {number_text(v)}", value.span, hint, ctx.calls, notes)
            return None
        return v

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


def value_text(value: Any) -> str:
    """A value as the user would write it: shapes as 3x3."""
    return "x".join(map(str, value)) if isinstance(value, tuple) else str(value)


def number_text(v: int | float) -> str:
    text = repr(v) if isinstance(v, float) else str(v)  # as written: 2.0, not 2
    return text if len(text) < 24 else f"{text[:10]}…({len(text)} digits)"


def _param_text(param: ast.Param) -> str:
    return param.name.text if param.default is None else f"{param.name.text}=…"


def argument_text(arg: ast.Arg, env: dict[str, Value]) -> str:
    """An argument as a block call's title shows it, parameters replaced by their values: `basic(64, S=2)`."""

    def text(expr) -> str:
        if isinstance(expr, ast.Ref) and expr.name in env:
            return str(env[expr.name].value)
        if isinstance(expr, ast.Ref):
            return expr.name
        if isinstance(expr, ast.Num | ast.Str):
            return str(expr.value)
        if isinstance(expr, ast.Sizes):
            return value_text(expr.values)
        if isinstance(expr, ast.Neg):
            return f"-{text(expr.operand)}"
        return f"{text(expr.left)}{expr.op}{text(expr.right)}"

    return text(arg.value) if arg.key is None else f"{arg.key.text}={text(arg.value)}"
