"""Syntax tree to network tree: blocks inlined, repeats unrolled, arguments checked, names given.

Naming (the names become module names, so a state dict reads like the spec):
- `name:` before a statement names that layer, or the namespace its block call or group opens.
- An unnamed layer is named after its kind and a counter in its namespace: conv1, bn1, conv2.
- A block call opens a namespace: its label, or the block's name and a counter (basic1).
- `x N` opens a namespace whose members are numbered 0..N-1, like nn.Sequential; so does a
  named `seq`, and a repeat inside a named `seq` continues its numbering.
- Unnamed `residual`, `concat` and `seq` open none: their layers live beside their neighbours.
"""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from . import ast
from .errors import Diagnostic, Source, Span, SpeccError
from .ir import Group, Layer, Network, Node
from .layers import KINDS, REQUIRED, Field

KEYWORDS = ("network", "input", "init", "train", "block")
INITS = ("default", "kaiming", "xavier")
GROUP_FIELDS = {
    "seq": (),
    "concat": (),
    "residual": (Field("shortcut", "word", "identity", "identity, project or auto", ("identity", "project", "auto"), positional=True),),
}
MAX_CALL_DEPTH = 32


@dataclass(frozen=True)
class Value:
    value: Any  # int | float | str
    span: Span
    word: bool = False  # a bare name such as `same`, as opposed to a "string"


class Scope:
    """A namespace: hands out unique names, by counter per kind or by index."""

    def __init__(self, path: tuple[str, ...], numbered: bool = False):
        self.path, self.numbered = path, numbered
        self.taken: dict[str, Span | None] = {}
        self.counts: Counter[str] = Counter()
        self.index = 0

    def take(self, label: ast.Name | None, base: str, expander: Expander) -> str:
        if label is not None:
            if label.text in self.taken:
                expander.error(
                    f"the name '{label.text}' is used twice here", label.span, "each layer or block in one place needs its own name"
                )
            self.taken[label.text] = label.span
            return label.text
        while True:
            if self.numbered:
                name, self.index = str(self.index), self.index + 1
            else:
                self.counts[base] += 1
                name = f"{base}{self.counts[base]}"
            if name not in self.taken:
                self.taken[name] = None
                return name


@dataclass
class Context:
    scope: Scope
    env: dict[str, Value] = field(default_factory=dict)
    calls: list[tuple[str, Span]] = field(default_factory=list)
    frozen: bool = False

    def inside(self, scope: Scope | None = None, **changes) -> Context:
        return Context(
            scope or self.scope, changes.get("env", self.env), changes.get("calls", self.calls), changes.get("frozen", self.frozen)
        )


def expand(spec: ast.Spec, source: Source) -> Network:
    return Expander(spec, source).run()


def did_you_mean(word: str, candidates) -> str | None:
    lowered = {c.lower(): c for c in candidates}
    if word.lower() in lowered:
        return f"did you mean '{lowered[word.lower()]}'?"
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


class Expander:
    def __init__(self, spec: ast.Spec, source: Source):
        self.spec, self.source = spec, source
        self.diagnostics: list[Diagnostic] = []
        self.blocks: dict[str, ast.BlockDef] = {}
        for block in spec.blocks:
            if block.name.text in self.blocks or block.name.text in KINDS or block.name.text in GROUP_FIELDS:
                self.error(f"a block named '{block.name.text}' already exists", block.name.span, "choose another name")
            self.blocks[block.name.text] = block

    def error(self, message: str, span: Span | None, hint: str | None = None, calls=()) -> None:
        notes = [(text, where) for text, where in reversed(list(calls))]
        self.diagnostics.append(Diagnostic(message, span, hint, notes=notes))

    def run(self) -> Network:
        input_shape = self._input_shape()
        body = self.statements(self.spec.body, Context(Scope(())))
        if not self.spec.body:
            self.error("the spec has no layers", Span(1, 1, 1, 2), "add layers after the `input` line, one per line")
        network = Network(
            name=self.spec.network.text if self.spec.network else _stem(self.source.path),
            input_shape=input_shape,
            body=body,
            init=self._init(),
            train={s.key.text: self.evaluate(s.value, {}) for s in self.spec.train},
            source_text=self.source.text,
            source_path=self.source.path,
        )
        if any(d.is_error for d in self.diagnostics):
            raise SpeccError(diagnostics=self.diagnostics, source=self.source)
        return network

    def _input_shape(self) -> tuple[int, ...]:
        shape, span = self.spec.input_shape, self.spec.input_span
        if shape is None:
            self.error("the spec has no `input` line", Span(1, 1, 1, 2), "add e.g. `input 3x32x32` (channels x height x width)")
            return (1, 1, 1)
        if len(shape) > 4 or 0 in shape:
            self.error(
                f"input {'x'.join(map(str, shape))} is not a shape specc can take",
                span,
                "write C x L (1-D), C x H x W (2-D) or C x D x H x W (3-D), every size at least 1",
            )
        return shape

    def _init(self) -> str:
        if self.spec.init is None:
            return "default"
        if self.spec.init.text not in INITS:
            self.error(
                f"unknown initialisation '{self.spec.init.text}'",
                self.spec.init.span,
                did_you_mean(self.spec.init.text, INITS) or f"choose one of {', '.join(INITS)}",
            )
        return self.spec.init.text

    # ---- values -------------------------------------------------------------------

    def evaluate(self, expr: ast.Expr, env: dict[str, Value]) -> Value:
        if isinstance(expr, ast.Num):
            return Value(expr.value, expr.span)
        if isinstance(expr, ast.Str):
            return Value(expr.value, expr.span)
        if isinstance(expr, ast.Ref):
            return env.get(expr.name) or Value(expr.name, expr.span, word=True)
        if isinstance(expr, ast.Neg):
            inner = self.evaluate(expr.operand, env)
            return Value(-self._number(inner, "-"), expr.span)
        left, right = self.evaluate(expr.left, env), self.evaluate(expr.right, env)
        a, b = self._number(left, expr.op), self._number(right, expr.op)
        if expr.op == "/" and b == 0:
            self.error("division by zero", expr.span)
            return Value(0, expr.span)
        result = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a // b if a % b == 0 else a / b}[expr.op]()
        return Value(result, expr.span)

    def _number(self, value: Value, op: str) -> int | float:
        if isinstance(value.value, (int, float)) and not value.word:
            return value.value
        self.error(
            f"'{value.value}' is not a number, so '{op}' cannot apply to it",
            value.span,
            "arithmetic works on numbers and on block parameters that hold numbers",
        )
        return 0

    # ---- statements -------------------------------------------------------------------

    def statements(self, statements: list[ast.Statement], ctx: Context) -> list[Node]:
        nodes: list[Node] = []
        for statement in statements:
            nodes.extend(self.statement(statement, ctx))
        return nodes

    def statement(self, st: ast.Statement, ctx: Context) -> list[Node]:
        items, frozen = self._flags(st.items, ctx)
        ctx = ctx.inside(frozen=ctx.frozen or frozen)
        if st.repeat is None:
            node = self.single(st, items, ctx, ctx.scope.take(st.label, self._base(st), self) if self._known(st) else "")
            return [node] if node is not None else []
        if st.repeat < 1:
            self.error("a repeat count must be at least 1", st.repeat_span)
            return []
        if ctx.scope.numbered and st.label is None:  # continue the enclosing numbering
            return [n for _ in range(st.repeat) if (n := self.single(st, items, ctx, ctx.scope.take(None, "", self)))]
        name = ctx.scope.take(st.label, self._base(st), self)
        scope = Scope(ctx.scope.path + (name,), numbered=True)
        inner = ctx.inside(scope)
        children = [n for _ in range(st.repeat) if (n := self.single(st, items, inner, scope.take(None, "", self)))]
        return [Group("repeat", f"x{st.repeat}", scope.path, children, st.name.span, st.span.line, ctx.frozen, list(ctx.calls))]

    def _flags(self, items: list[ast.Arg], ctx: Context) -> tuple[list[ast.Arg], bool]:
        """Split off the `freeze` flag, which any statement takes."""
        rest = [a for a in items if not (a.key is None and isinstance(a.value, ast.Ref) and a.value.name == "freeze")]
        return rest, len(rest) != len(items)

    def _base(self, st: ast.Statement) -> str:
        name = st.name.text
        return KINDS[name].short if name in KINDS else name

    def _known(self, st: ast.Statement) -> bool:
        return st.name.text in KINDS or st.name.text in self.blocks or st.name.text in GROUP_FIELDS

    def single(self, st: ast.Statement, items: list[ast.Arg], ctx: Context, name: str) -> Node | None:
        """One instance of a statement, named `name` in the current scope."""
        word = st.name.text
        if st.body is not None:
            return self.group(st, items, ctx, name)
        if word in self.blocks:
            return self.call(st, items, ctx, name)
        if st.call_args is not None:
            self.error(
                f"unknown block '{word}'",
                st.name.span,
                did_you_mean(word, self.blocks) or "define it first with `block NAME(ARGS) { ... }`",
                ctx.calls,
            )
            return None
        if word in KINDS:
            return self.layer(st, items, ctx, name)
        if word in GROUP_FIELDS:
            self.error(
                f"'{word}' needs a body in braces", st.name.span, f"write `{word} {{`, the layers on the next lines, then `}}`", ctx.calls
            )
            return None
        candidates = [*KINDS, *self.blocks, *GROUP_FIELDS, *KEYWORDS]
        self.error(f"unknown layer '{word}'", st.name.span, did_you_mean(word, candidates) or f"layers are: {', '.join(KINDS)}", ctx.calls)
        return None

    def layer(self, st: ast.Statement, items: list[ast.Arg], ctx: Context, name: str) -> Layer | None:
        kind = KINDS[st.name.text]
        resolved = self.arguments(kind.name, kind.fields, items, ctx, st.name.span)
        if resolved is None:
            return None
        args, spans = resolved
        return Layer(ctx.scope.path + (name,), kind, args, st.name.span, st.span.line, ctx.frozen, spans, list(ctx.calls))

    def group(self, st: ast.Statement, items: list[ast.Arg], ctx: Context, name: str) -> Group | None:
        word = st.name.text
        if word not in GROUP_FIELDS:
            self.error(
                f"'{word}' cannot have a body",
                st.name.span,
                did_you_mean(word, GROUP_FIELDS) or "groups are seq, residual and concat",
                ctx.calls,
            )
            return None
        resolved = self.arguments(word, GROUP_FIELDS[word], items, ctx, st.name.span)
        named = st.label is not None or name.isdigit()
        scope = Scope(ctx.scope.path + (name,), numbered=word == "seq") if named else ctx.scope
        inner = ctx.inside(scope)
        children = self.statements(st.body, inner)
        if not st.body:
            self.error(f"'{word}' has an empty body", st.name.span, None, ctx.calls)
        group = Group(word, word, scope.path, children, st.name.span, st.span.line, ctx.frozen, list(ctx.calls), named)
        if resolved is not None and word == "residual":
            group.shortcut = resolved[0]["shortcut"]
            if group.shortcut != "identity":
                group.shortcut_name = scope.take(None, "shortcut", self)
        return group

    def call(self, st: ast.Statement, items: list[ast.Arg], ctx: Context, name: str) -> Group | None:
        block = self.blocks[st.name.text]
        if len(ctx.calls) >= MAX_CALL_DEPTH:
            self.error(f"block '{block.name.text}' calls itself without end", st.name.span, None, ctx.calls)
            return None
        args = st.call_args if st.call_args is not None else items
        if st.call_args is not None and items:
            self.error("a block call takes its arguments inside the parentheses", items[0].span, None, ctx.calls)
        env = self.bind(block, args, ctx, st.name.span)
        if env is None:
            return None
        title = f"{block.name.text}({', '.join(_show(a, ctx.env) for a in args)})"
        scope = Scope(ctx.scope.path + (name,))
        calls = ctx.calls + [(f"in block '{block.name.text}', called here", st.name.span)]
        children = self.statements(block.body, ctx.inside(scope, env=env, calls=calls))
        return Group("block", title, scope.path, children, st.name.span, st.span.line, ctx.frozen, list(ctx.calls))

    def bind(self, block: ast.BlockDef, args: list[ast.Arg], ctx: Context, where: Span) -> dict[str, Value] | None:
        """Block parameters bound to the call's arguments; None after an error."""
        params = {p.name.text: p for p in block.params}
        order = list(params)
        env: dict[str, Value] = {}
        ok = True
        for i, arg in enumerate(args):
            if arg.key is None:
                if i >= len(order):
                    self.error(
                        f"'{block.name.text}' takes {len(order)} argument{'s' * (len(order) != 1)} ({', '.join(order)}), got more",
                        arg.span,
                        None,
                        ctx.calls,
                    )
                    ok = False
                    continue
                key, key_span = order[i], arg.span
            else:
                key, key_span = arg.key.text, arg.key.span
                if key not in params:
                    self.error(
                        f"'{block.name.text}' has no parameter '{key}'",
                        key_span,
                        did_you_mean(key, params) or f"its parameters are: {', '.join(order) or 'none'}",
                        ctx.calls,
                    )
                    ok = False
                    continue
            if key in env:
                self.error(f"'{key}' is given twice", key_span, None, ctx.calls)
                ok = False
            env[key] = self.evaluate(arg.value, ctx.env)
        for key, param in params.items():
            if key not in env:
                if param.default is None:
                    self.error(
                        f"'{block.name.text}' needs the argument '{key}'",
                        where,
                        f"'{block.name.text}({', '.join(_param_text(p) for p in block.params)})' is defined on line {block.span.line}",
                        ctx.calls,
                    )
                    ok = False
                else:
                    env[key] = self.evaluate(param.default, env)
        return env if ok else None

    # ---- arguments of layers and groups -------------------------------------------------

    def arguments(self, what: str, fields: tuple[Field, ...], items: list[ast.Arg], ctx: Context, where: Span):
        """Check a layer's arguments against its fields: ({name: value}, {name: span}) or None."""
        args: dict[str, Any] = {}
        spans: dict[str, Span] = {}
        ok = True
        for item in items:
            value = self.evaluate(item.value, ctx.env)
            fld = self._field_for(what, fields, item, value, args, ctx)
            if fld is None:
                ok = False
                continue
            converted = self._convert(what, fld, value, ctx)
            if converted is _BAD:
                ok = False
                continue
            args[fld.name], spans[fld.name] = converted, value.span
        for fld in fields:
            if fld.name not in args:
                if fld.required:
                    self.error(f"{what} needs {fld.name} ({fld.help})", where, f"write e.g. `{what} {fld.name}=...`", ctx.calls)
                    ok = False
                args[fld.name] = fld.default
        return (args, spans) if ok else None

    def _field_for(self, what, fields, item: ast.Arg, value: Value, args, ctx) -> Field | None:
        if item.key is not None:
            fld = next((f for f in fields if f.name == item.key.text), None)
            if fld is None:
                names = [f.name for f in fields]
                hint = did_you_mean(item.key.text, names) or (
                    f"{what} takes: {', '.join(names)}" if names else f"{what} takes no arguments"
                )
                self.error(f"{what} has no argument '{item.key.text}'", item.key.span, hint, ctx.calls)
            elif fld.name in args:
                self.error(f"{fld.name} is given twice", item.key.span, None, ctx.calls)
                return None
            return fld
        if value.word:
            for fld in fields:
                if value.value in fld.choices or (fld.type == "bool" and fld.name == value.value):
                    return fld
            if any(f.name == value.value for f in fields):
                self.error(f"'{value.value}' needs a value: a '=' is missing", value.span, f"write {value.value}=...", ctx.calls)
                return None
        for fld in fields:
            if fld.positional and fld.name not in args and not fld.choices and fld.type != "bool":
                return fld
        names = [f.name for f in fields]
        hint = f"{what} takes: {', '.join(names)}" if names else f"{what} takes no arguments"
        if value.word:
            hint = did_you_mean(str(value.value), [c for f in fields for c in f.choices] + names) or hint
        self.error(f"{what} does not take '{value.value}' here", value.span, hint, ctx.calls)
        return None

    def _convert(self, what: str, fld: Field, value: Value, ctx: Context):
        v = value.value
        if fld.type == "bool":
            if value.word and v in ("true", "false") or value.word and v == fld.name:
                return v != "false"
            return self._bad(f"{fld.name} is true or false, got '{v}'", value, ctx)
        if fld.type in ("word", "pad") and value.word:
            if v in fld.choices:
                return v
            return self._bad(
                f"{what} {fld.name} cannot be '{v}'", value, ctx, did_you_mean(v, fld.choices) or f"choose one of {', '.join(fld.choices)}"
            )
        if fld.type == "word" or value.word or isinstance(v, str):
            return self._bad(f"{what} {fld.name} must be {fld.help or 'a number'}, got '{v}'", value, ctx)
        if fld.type in ("int", "pad") and not isinstance(v, int):
            return self._bad(f"{what} {fld.name} must be a whole number, got {v}", value, ctx)
        minimum = 0 if fld.type == "pad" else fld.minimum
        if minimum is not None and v < minimum:
            return self._bad(f"{what} {fld.name} must be at least {minimum:g}, got {v}", value, ctx)
        if fld.below is not None and v >= fld.below:
            return self._bad(f"{what} {fld.name} must be below {fld.below:g}, got {v}", value, ctx)
        return v

    def _bad(self, message: str, value: Value, ctx: Context, hint: str | None = None):
        self.error(message, value.span, hint, ctx.calls)
        return _BAD


_BAD = object()


def _stem(path: str) -> str:
    name = path.rsplit("/", 1)[-1].split(".", 1)[0]
    return name if name.isidentifier() else "network"


def _param_text(param: ast.Param) -> str:
    return param.name.text if param.default is None else f"{param.name.text}=…"


def _show(arg: ast.Arg, env: dict[str, Value]) -> str:
    def text(expr) -> str:
        if isinstance(expr, ast.Ref) and expr.name in env:
            return str(env[expr.name].value)
        if isinstance(expr, ast.Ref):
            return expr.name
        if isinstance(expr, ast.Num | ast.Str):
            return str(expr.value)
        if isinstance(expr, ast.Neg):
            return f"-{text(expr.operand)}"
        return f"{text(expr.left)}{expr.op}{text(expr.right)}"

    return text(arg.value) if arg.key is None else f"{arg.key.text}={text(arg.value)}"


__all__ = ["expand", "did_you_mean", "KEYWORDS", "INITS", "REQUIRED"]
