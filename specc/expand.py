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
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from . import ast
from .errors import Diagnostic, Source, Span, SpeccError
from .ir import Group, Layer, Network, Node, module_name_problem
from .layers import KINDS, REQUIRED, Field

KEYWORDS = ("network", "input", "init", "train", "block")
INITS = ("default", "kaiming", "xavier")
GROUP_FIELDS = {
    "seq": (),
    "concat": (),
    "residual": (Field("shortcut", "word", "identity", "identity, project or auto", ("identity", "project", "auto"), positional=True),),
}
MAX_CALL_DEPTH = 32
# Limits that keep a runaway spec (`x1000000`, a block that calls itself twice) from hanging the
# checker: no real network comes near them.
MAX_NODES = 100_000
MAX_ERRORS = 50
MAX_INT = 2**63 - 1  # torch sizes are int64
MAX_BITS = 1024  # arithmetic results beyond this are refused at once, far past MAX_INT yet cheap to print


@dataclass(frozen=True)
class Value:
    value: Any  # int | float | str
    span: Span
    word: bool = False  # a bare name such as `same`, as opposed to a "string"
    failed: bool = False  # arithmetic that was reported (1/0): its uses stay silent, so no follow-on errors


class Scope:
    """A namespace: hands out unique names, by counter per kind or by index."""

    def __init__(self, path: tuple[str, ...], numbered: bool = False):
        self.path, self.numbered = path, numbered
        self.taken: dict[str, Span | None] = {}
        self.counts: Counter[str] = Counter()
        self.index = 0

    def take(self, label: ast.Name | None, base: str, expander: Expander) -> str:
        if label is not None:
            problem = module_name_problem(label.text, top_level=not self.path)
            if problem:
                message, hint = problem
                expander.error(message, label.span, hint)
            elif label.text in self.taken:
                first = self.taken[label.text]
                if first is None:
                    hint = f"an unnamed layer before it is called '{label.text}' automatically; choose another name"
                    expander.error(f"the name '{label.text}' is already taken", label.span, hint)
                else:
                    note = [(f"'{label.text}' is first used here", first)]
                    hint = "each layer or block in one place needs its own name"
                    expander.error(f"the name '{label.text}' is used twice here", label.span, hint, first_notes=note)
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
    calls: list[tuple[str, Span]] = field(default_factory=list)  # notes: where each enclosing block was called
    frozen: bool = False
    blocks: tuple[str, ...] = ()  # the enclosing block calls, outermost first

    def inside(self, scope: Scope | None = None, **changes) -> Context:
        return Context(
            scope or self.scope,
            changes.get("env", self.env),
            changes.get("calls", self.calls),
            changes.get("frozen", self.frozen),
            changes.get("blocks", self.blocks),
        )


class ExpansionError(SpeccError):
    """Expansion's errors, with the network as far as it could be built (None where nothing can be
    trusted: a bad input shape, a spec cut short), so that its shapes can be checked all the same."""

    def __init__(self, diagnostics: list[Diagnostic], source: Source, network: Network | None):
        super().__init__(diagnostics=diagnostics, source=source)
        self.network = network


class _StopExpanding(Exception):  # noqa: N818 - a signal, not an error
    """Expansion stops: the spec grows past MAX_NODES or MAX_ERRORS."""


def expand(spec: ast.Spec, source: Source) -> Network:
    return Expander(spec, source).run()


def with_argument_errors(diagnostics: list[Diagnostic], recovered: ast.Spec, source: Source, before: float) -> list[Diagnostic]:
    """Syntax errors (`diagnostics`) and the argument errors of layers and groups outside blocks, in file order.

    `recovered` is the spec as read without the lines that failed to parse. An argument's mistake
    depends on its own line alone, unless the line sits in a block (its words may be parameters):
    so only lines known to be outside every block, those before line `before`, are looked at.
    """
    expander = Expander(recovered, source)
    expander.diagnostics = []  # the definitions' own errors may be echoes of the lines that failed
    expander.reported = set()
    try:
        expander.argument_errors(recovered.body, Context(Scope(())), before)
    except (RecursionError, _StopExpanding):
        pass  # nested too deeply to look into, or errors enough: the syntax errors are enough
    return sorted(diagnostics + expander.diagnostics, key=_position)


# What users of other frameworks write, and what specc calls it.
SYNONYMS = {
    "conv2d": "conv",
    "conv1d": "conv",
    "conv3d": "conv",
    "convolution": "conv",
    "linear": "fc",
    "dense": "fc",
    "fully_connected": "fc",
    "maxpool": "pool max",
    "maxpool2d": "pool max",
    "max_pool": "pool max",
    "avgpool": "pool avg",
    "avgpool2d": "pool avg",
    "avg_pool": "pool avg",
    "globalavgpool": "pool avg global",
    "bn": "batchnorm",
    "batchnorm2d": "batchnorm",
    "batch_norm": "batchnorm",
    "leaky_relu": "leakyrelu",
    "lrelu": "leakyrelu",
    "swish": "silu",
    "logistic": "sigmoid",
    "add": "residual",
    "cat": "concat",
    "sequential": "seq",
    "glorot": "xavier",
    "he": "kaiming",
    "msra": "kaiming",
    "model": "network",
    "net": "network",
    # argument names
    "stride": "S",
    "strides": "S",
    "padding": "P",
    "pad": "P",
    "kernel": "F",
    "kernel_size": "F",
    "filter": "F",
    "size": "F",
    "filters": "K",
    "out_channels": "K",
    "channels": "K",
    "units": "K",
    "out_features": "K",
    "rate": "p",
    "dilation_rate": "dilation",
    "use_bias": "bias",
}


def did_you_mean(word: str, candidates) -> str | None:
    """A hint naming the candidate the user most likely meant, or None."""
    candidates = list(candidates)
    lowered = {c.lower(): c for c in candidates}
    if word.lower() in lowered:
        return f"did you mean '{lowered[word.lower()]}'?"
    synonym = SYNONYMS.get(word.lower())
    if synonym and synonym.split()[0] in candidates:
        return f"specc calls it '{synonym}'"
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


class Expander:
    def __init__(self, spec: ast.Spec, source: Source):
        self.spec, self.source = spec, source
        self.diagnostics: list[Diagnostic] = []
        self.reported: set[tuple[str, Span | None]] = set()  # a set: a line of 4,000 bad arguments stays linear
        self.nodes = 0
        self.blocks: dict[str, ast.BlockDef] = {}
        self.bad_defaults: set[tuple[str, str]] = set()  # (block, parameter): reported at the definition
        self.shadowing: set[str] = set()  # blocks named like a layer: reported at the definition
        self.broken: set[str] = set()  # blocks whose definition is in doubt: what their calls give is unknown
        self.checkable = True  # False where an error leaves nothing to shape-check against
        for block in spec.blocks:
            name = block.name.text
            if name in KINDS or name in GROUP_FIELDS:
                # not defined at all, so its calls and its own body are not reported again
                what = "layer" if name in KINDS else "group"
                hint = f"call the block something else, e.g. {name}_block"
                self.error(f"a block cannot be called '{name}': that is a {what}", block.name.span, hint)
                self.shadowing.add(name)
                continue
            if name in self.blocks:
                first = [(f"the first '{name}' is defined here", self.blocks[name].name.span)]
                self.error(f"a block named '{name}' is defined twice", block.name.span, "rename one of them", first_notes=first)
                self.broken.add(name)  # either definition may be the one meant
                continue
            self.blocks[name] = block
            self._check_params(block)
        # `blok b(K) {` is reported once, as a misspelt keyword; its calls are not unknown blocks as well
        self.misspelt = {st.items[0].value.name for st in spec.body if _misspelt_block(st)}

    def _check_params(self, block: ast.BlockDef) -> None:
        """A block's parameter list: each name once, and defaults that use only the parameters before them."""
        seen: dict[str, Span] = {}
        order = [p.name.text for p in block.params]
        for i, param in enumerate(block.params):
            name = param.name.text
            if name in seen:
                first = [(f"the first '{name}' is declared here", seen[name])]
                hint = "each parameter needs its own name; remove or rename this one"
                self.error(f"block '{block.name.text}' has two parameters named '{name}'", param.name.span, hint, first_notes=first)
                self.broken.add(block.name.text)
            seen.setdefault(name, param.name.span)
            later = next((r for r in _refs(param.default) if r.name in order[i:]), None)
            if later is not None:
                self.bad_defaults.add((block.name.text, name))
                what = f"'{name}' itself" if later.name == name else f"'{later.name}', which comes after it"
                hint = f"a default may use only the parameters before it, as in block b(K, S=K/2); give {name} a value, e.g. {name}=1"
                self.error(f"the default of '{name}' cannot refer to {what}", later.span, hint)

    def error(self, message: str, span: Span | None, hint: str, calls=(), first_notes=()) -> None:
        """Record an error; `calls` become notes, innermost first, except one on the error's own line.

        Every error says how to fix it: `hint` is required.
        """
        if (message, span) in self.reported:
            return  # the same mistake met again through a repeat or another call of its block
        self.reported.add((message, span))
        notes = list(first_notes) + [(text, where) for text, where in reversed(list(calls)) if span is None or where.line != span.line]
        self.diagnostics.append(Diagnostic(message, span, hint, notes=notes))

    def run(self) -> Network:
        input_shape = self._input_shape()
        try:
            body = self.statements(self.spec.body, Context(Scope(())))
        except _StopExpanding:
            body, self.checkable = [], False
        except RecursionError:
            body, self.checkable = [], False
            self.error("the spec nests too deeply to expand", Span(1, 1, 1, 2), "use blocks instead of deep nesting")
        if not self.spec.body:
            self.error("the spec has no layers", None, "add layers after the `input` line, one per line")
        network = Network(
            name=self.spec.network.text if self.spec.network else _stem(self.source.path),
            input_shape=input_shape,
            body=body,
            init=self._init(),
            train=self._train(),
            source_text=self.source.text,
            source_path=self.source.path,
        )
        if any(d.is_error for d in self.diagnostics):
            partial = network if self.checkable else None
            raise ExpansionError(sorted(self.diagnostics, key=_position), self.source, partial)
        return network

    def _input_shape(self) -> tuple[int, ...]:
        shape, span = self.spec.input_shape, self.spec.input_span
        if shape is None:
            self.error("the spec has no `input` line", None, "add e.g. `input 3x32x32` (channels x height x width) before the layers")
            self.checkable = False
            return (1, 1, 1)
        if len(shape) > 4 or 0 in shape or max(shape) > MAX_INT:
            self.checkable = False
            self.error(
                f"input {'x'.join(map(str, shape))} is not a shape specc can take",
                span,
                "write C x L (1-D), C x H x W (2-D) or C x D x H x W (3-D), every size at least 1",
            )
        return shape

    def _train(self) -> dict[str, Any]:
        """The `train { }` settings as plain values (numbers, or words as strings); the runner checks meaning."""
        settings: dict[str, Any] = {}
        for setting in self.spec.train:
            if setting.key.text in settings:
                self.error(f"the train setting '{setting.key.text}' is given twice", setting.key.span, "keep one of them")
            value = self.evaluate(setting.value, {})
            if isinstance(value.value, tuple):
                self.error(f"a train setting takes one value, got {_text(value.value)}", value.span, "write e.g. epochs=10")
            settings[setting.key.text] = value.value
        return settings

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
            self.error("division by zero", expr.span, "the number after '/' is 0 here; divide by something else", calls)
            return failed
        try:
            result = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a // b if a % b == 0 else a / b}[expr.op]()
            too_large = isinstance(result, int) and result.bit_length() > MAX_BITS
        except OverflowError:
            too_large = True
        if too_large:  # nested blocks can square a number at every level: stop before its digits run to millions
            self.error(
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
        self.error(
            f"'{_text(value.value)}' is not a number, so '{op}' cannot apply to it",
            value.span,
            "arithmetic works on numbers and on block parameters that hold numbers",
            calls,
        )
        return None

    # ---- statements -------------------------------------------------------------------

    def statements(self, statements: list[ast.Statement], ctx: Context) -> list[Node]:
        nodes: list[Node] = []
        for statement in statements:
            nodes.extend(self.statement(statement, ctx))
        return nodes

    def argument_errors(self, statements: list[ast.Statement], ctx: Context, before: float) -> None:
        """Check the arguments of these layers and groups, and of those inside them, on lines before `before`."""
        for st in statements:
            if st.span.line >= before or self._glued_repeat(st, ctx):
                continue
            word, items = st.name.text, self._flags(st.items, ctx)[0]
            if word in KINDS and st.body is None and st.call_args is None:
                self.arguments(word, KINDS[word].fields, items, ctx, st.name.span)
            elif word in GROUP_FIELDS and st.body is not None:
                self.arguments(word, GROUP_FIELDS[word], items, ctx, st.name.span)
                self.argument_errors(st.body, ctx, before)

    def _budget(self, st: ast.Statement) -> None:
        """Stop expanding after too many errors, or where repeats and blocks multiply without bound."""
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.error(
                f"the network grows past {MAX_NODES:,} layers and groups here",
                st.name.span,
                "check repeat counts (x N) and blocks that call other blocks",
                [],
            )
            raise _StopExpanding
        if len(self.diagnostics) >= MAX_ERRORS:
            raise _StopExpanding

    def statement(self, st: ast.Statement, ctx: Context) -> list[Node]:
        if self._glued_repeat(st, ctx):
            return [self.unknown(st, ctx)]
        items, frozen = self._flags(st.items, ctx)
        ctx = ctx.inside(frozen=ctx.frozen or frozen)
        if st.repeat is None:
            node = self.single(st, items, ctx, ctx.scope.take(st.label, self._base(st), self) if self._known(st) else "")
            return [node] if node is not None else []
        if not 1 <= st.repeat <= MAX_NODES:
            hint = "write a count such as x2; to drop the layer, delete the line"
            self.error(f"a repeat count must be between 1 and {MAX_NODES:,}", st.repeat_span, hint, ctx.calls)
            return [self.unknown(st, ctx)]
        if ctx.scope.numbered and st.label is None:  # continue the enclosing numbering
            return [self.single(st, items, ctx, ctx.scope.take(None, "", self)) for _ in range(st.repeat)]
        name = ctx.scope.take(st.label, self._base(st), self)
        scope = Scope(ctx.scope.path + (name,), numbered=True)
        inner = ctx.inside(scope)
        children = [self.single(st, items, inner, scope.take(None, "", self)) for _ in range(st.repeat)]
        return [Group("repeat", f"x{st.repeat}", scope.path, children, st.name.span, st.span.line, ctx.frozen, list(ctx.calls))]

    def _glued_repeat(self, st: ast.Statement, ctx: Context) -> bool:
        """`b(4)x2`: the lexer reads a repeat only after a space, so that `F=3x3` is never one."""
        glued = next((a for a in st.items if re.fullmatch(r"x\d+", _bare_word(a) or "")), None)
        if glued is None:
            return False
        before = self.source.line_text(glued.span.line)[: glued.span.column - 1].rstrip()
        self.error("a repeat count needs a space before it", glued.span, f"write `{before} {glued.value.name}`", ctx.calls)
        return True

    def _flags(self, items: list[ast.Arg], ctx: Context) -> tuple[list[ast.Arg], bool]:
        """Split off the `freeze` flag, which any statement takes."""
        rest = [a for a in items if not _is_word(a, "freeze")]
        return rest, len(rest) != len(items)

    def _base(self, st: ast.Statement) -> str:
        name = st.name.text
        return KINDS[name].short if name in KINDS else name

    def _known(self, st: ast.Statement) -> bool:
        return st.name.text in KINDS or st.name.text in self.blocks or st.name.text in GROUP_FIELDS

    def single(self, st: ast.Statement, items: list[ast.Arg], ctx: Context, name: str) -> Node:
        """One instance of a statement, named `name` in the current scope; `unknown` where it fails."""
        node = self._single(st, items, ctx, name)
        return node if node is not None else self.unknown(st, ctx)

    def unknown(self, st: ast.Statement, ctx: Context) -> Group:
        """Stands where a statement could not be expanded (already reported): its output shape is unknown."""
        return Group("unknown", "?", ctx.scope.path, [], st.name.span, st.span.line, ctx.frozen, list(ctx.calls), scoped=False, failed=True)

    def _single(self, st: ast.Statement, items: list[ast.Arg], ctx: Context, name: str) -> Node | None:
        self._budget(st)
        word = st.name.text
        if word in KEYWORDS and word not in self.blocks:
            self._misplaced_header(st, ctx)
            return None
        if st.body is not None:
            return self.group(st, items, ctx, name)
        if word in self.blocks:
            return self.call(st, items, ctx, name)
        if st.call_args is not None:
            self._unknown_block(st, ctx)
            return None
        if word in KINDS:
            return self.layer(st, items, ctx, name)
        if word in GROUP_FIELDS:
            head = self.source.line_text(st.span.line).split("#", 1)[0].strip()
            hint = f"end the line with '{{' (`{head} {{`), put the layers on the lines after it, then '}}'"
            self.error(f"'{word}' needs a body in braces", st.name.span, hint, ctx.calls)
            return None
        self._unknown_word(st, ctx)
        return None

    def _misplaced_header(self, st: ast.Statement, ctx: Context) -> None:
        """`input`, `network`, `init`, `train` or `block` inside braces: the grammar reads them only at the top."""
        word = st.name.text
        if word == "block":
            message = "a block is defined at the top level of the file, not inside braces"
            hint = "move the definition out of the group, and call the block here by name, e.g. basic(64)"
        else:
            line = self.source.line_text(st.span.line).split("#", 1)[0].strip()
            message = f"'{word}' belongs at the top of the file, not inside braces"
            hint = f"move `{line}` above the layers, outside every group and block"
        self.error(message, st.name.span, hint, ctx.calls)

    def _unknown_block(self, st: ast.Statement, ctx: Context) -> None:
        word = st.name.text
        if word in self.shadowing:
            return
        if word in KINDS or word in GROUP_FIELDS:
            self.error(
                f"'{word}' is a layer, not a block: its arguments are not written in parentheses",
                st.name.span,
                f"write e.g. `{_example(word)}`",
                ctx.calls,
            )
            return
        if word in self.misspelt:
            return
        hint = did_you_mean(word, self.blocks) or "define it first with `block NAME(ARGS) { ... }`"
        self.error(f"unknown block '{word}'", st.name.span, hint, ctx.calls)

    def _unknown_word(self, st: ast.Statement, ctx: Context) -> None:
        """A line that starts with a word specc does not know: a misspelt layer, block or keyword."""
        word = st.name.text
        suggestion = did_you_mean(word, [*KINDS, *self.blocks, *GROUP_FIELDS, *KEYWORDS])
        what = "keyword" if suggestion and suggestion.split("'")[1] in KEYWORDS else "layer"
        hint = suggestion or f"the layers are {', '.join(KINDS)}; a block must be defined before it is called"
        self.error(f"unknown {what} '{word}'", st.name.span, hint, ctx.calls)

    def layer(self, st: ast.Statement, items: list[ast.Arg], ctx: Context, name: str) -> Layer | None:
        kind = KINDS[st.name.text]
        resolved = self.arguments(kind.name, kind.fields, items, ctx, st.name.span)
        if resolved is None:
            return None
        args, spans = resolved
        return Layer(ctx.scope.path + (name,), kind, args, st.name.span, st.span.line, ctx.frozen, spans, list(ctx.calls))

    def group(self, st: ast.Statement, items: list[ast.Arg], ctx: Context, name: str) -> Group | None:
        word = st.name.text
        if _misspelt_block(st):
            self.error(f"unknown keyword '{word}'", st.name.span, "did you mean 'block'?", ctx.calls)
            return None
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
            self.error(f"'{word}' has an empty body", st.name.span, _empty_body_hint(word), ctx.calls)
        group = Group(word, word, scope.path, children, st.name.span, st.span.line, ctx.frozen, list(ctx.calls), named)
        group.failed = resolved is None or not st.body  # `residual shortcut=projct`: how the body joins is unknown
        if resolved is not None and word == "residual":
            group.shortcut = resolved[0]["shortcut"]
            if group.shortcut != "identity":
                group.shortcut_name = scope.take(None, "shortcut", self)
        return group

    def call(self, st: ast.Statement, items: list[ast.Arg], ctx: Context, name: str) -> Group | None:
        block = self.blocks[st.name.text]
        if block.name.text in ctx.blocks or len(ctx.blocks) >= MAX_CALL_DEPTH:
            self.error(
                f"block '{block.name.text}' calls itself, so it would never end",
                st.name.span,
                "a block may call other blocks, but not itself, directly or through another block",
                ctx.calls,
            )
            return None
        args = st.call_args if st.call_args is not None else items
        stray = st.call_args is not None and bool(items)
        if stray:
            self._stray_items(items, ctx)
        env = self.bind(block, args, ctx, st.name.span)
        if env is None:
            return None
        title = f"{block.name.text}({', '.join(_show(a, ctx.env) for a in args)})"
        scope = Scope(ctx.scope.path + (name,))
        calls = ctx.calls + [(f"in block '{block.name.text}', called here", st.name.span)]
        inner = ctx.inside(scope, env=env, calls=calls, blocks=ctx.blocks + (block.name.text,))
        children = self.statements(block.body, inner)
        if stray or block.name.text in self.broken:
            return None  # expanded for the errors inside; the arguments meant, or the definition, are in doubt
        return Group("block", title, scope.path, children, st.name.span, st.span.line, ctx.frozen, list(ctx.calls))

    def _stray_items(self, items: list[ast.Arg], ctx: Context) -> None:
        first = items[0]
        if _is_word(first, "x") and len(items) > 1 and isinstance(items[1].value, ast.Num):
            self.error("a repeat count is written without a space", first.span.until(items[1].span), f"write x{items[1].value.value}")
            return
        word = _bare_word(first)
        if word is not None and did_you_mean(word, ["freeze"]):
            self.error(f"a block call does not take '{word}' here", first.span, "did you mean 'freeze'?", ctx.calls)
            return
        self.error(
            "a block call takes its arguments inside the parentheses",
            first.span,
            "write e.g. basic(64, S=2), then x2 to repeat it",
            ctx.calls,
        )

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
                self.error(f"'{name}' gets '{key}' twice", (arg.key or arg).span, hint, ctx.calls)
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
            self.error(
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
            self.error(f"'{name}' has no parameter '{arg.key.text}'", arg.key.span, hint, ctx.calls)
            return None
        if any(a.key is not None for a in args[:i]):
            self.error("a positional argument cannot follow a key=value argument", arg.span, "put positional arguments first", ctx.calls)
            return None
        if i >= len(order):
            taken = f"{len(order)} argument{'s' * (len(order) != 1)}" + (f" ({', '.join(order)})" if order else "")
            hint = f"call it as {name}({', '.join(_param_text(p) for p in block.params)})"
            self.error(f"'{name}' takes {taken}, but this is argument {i + 1}", arg.span, hint, ctx.calls)
            return None
        return order[i]

    # ---- arguments of layers and groups -------------------------------------------------

    def arguments(self, what: str, fields: tuple[Field, ...], items: list[ast.Arg], ctx: Context, where: Span):
        """Check a layer's arguments against its fields: ({name: value}, {name: span}) or None."""
        args: dict[str, Any] = {}
        spans: dict[str, Span] = {}
        bad: set[str] = set()  # given, but wrong: not also "missing"
        skip = False
        for i, item in enumerate(items):
            if len(self.diagnostics) >= MAX_ERRORS:  # a line of thousands of bad arguments: enough said
                raise _StopExpanding
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
                    self.error(f"{what} needs {fld.name} ({fld.help})", where, f"write e.g. `{_example(what)}`", ctx.calls)
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
            self.error(f"'{value.value}' needs a '=' before its value", span, f"write {value.value}={example}", ctx.calls)
        else:
            self.error(f"'{value.value}' needs a value", value.span, f"write {value.value}=…", ctx.calls)
        return True

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
                self.error(f"{fld.name} is given twice", item.key.span, f"give {fld.name} once: remove one of them", ctx.calls)
                return None
            return fld
        if value.word:
            for fld in fields:
                if value.value in fld.choices or (fld.type == "bool" and fld.name == value.value):
                    if fld.name in args:
                        self.error(f"{what} {fld.name} is given twice", value.span, f"{fld.name}: {fld.help}", ctx.calls)
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
        self.error(f"{what} does not take '{_text(value.value)}' here", value.span, hint, ctx.calls)
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
            return self._bad(f"{what} {fld.name} is true or false, got '{_text(v)}'", value, use, hint)
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
            return self._bad(f"{what} {fld.name} must be {expected}, got '{_text(v)}'", value, use, hint)
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
        self.error(message, value.span, hint, use.ctx.calls, notes)
        return _BAD


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
    shown = _text(sizes)
    window = {("conv", "F"): "filter", ("pool", "F"): "window", ("conv", "S"): "stride", ("pool", "S"): "stride"}.get((what, fld.name))
    if window is None:
        return f"{what} {fld.name} takes one number, got {shown}", f"write one number, e.g. {fld.name}={sizes[0]}"
    message = f"{what} {fld.name} takes one number: the {window} is {fld.name}×{fld.name}, got {shown}"
    if len(set(sizes)) == 1:
        return message, f"write {fld.name}={sizes[0]}"
    return message, f"write one number, e.g. {fld.name}={sizes[0]}: the {window} is the same along every axis"


def _example_value(fld: Field) -> Any:
    """A plausible value to show in a hint: F=3, P=1, the field's default, or K=16."""
    if fld.name in ("F", "P"):
        return {"F": 3, "P": 1}[fld.name]
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


def _empty_body_hint(word: str) -> str:
    if word == "concat":
        return "put the branches inside, one a line: a layer, a block call, or a seq { } of several layers"
    return f"put at least one layer inside, or remove the `{word}`"


def _text(value: Any) -> str:
    """A value as the user would write it: shapes as 3x3."""
    return "x".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _position(d: Diagnostic) -> tuple[int, int]:
    """File order; errors about the whole file first."""
    return (d.span.line, d.span.column) if d.span else (0, 0)


def _misspelt_block(st: ast.Statement) -> bool:
    """`blok b(K) {`: a word like `block`, then a name, then a body."""
    word = st.name.text
    if st.body is None or word in GROUP_FIELDS or word == "block" or not st.items:
        return False
    return _bare_word(st.items[0]) is not None and did_you_mean(word, ["block"]) is not None


def _refs(expr: ast.Expr | None):
    """Every bare word in an expression."""
    if isinstance(expr, ast.Ref):
        yield expr
    elif isinstance(expr, ast.Neg):
        yield from _refs(expr.operand)
    elif isinstance(expr, ast.BinOp):
        yield from _refs(expr.left)
        yield from _refs(expr.right)


def _bare_word(arg: ast.Arg) -> str | None:
    """The word of a positional bare-word argument (`freeze`, `x2`), else None."""
    return arg.value.name if arg.key is None and isinstance(arg.value, ast.Ref) else None


def _is_word(arg: ast.Arg, word: str) -> bool:
    return _bare_word(arg) == word


def _example(kind: str) -> str:
    return {"conv": "conv K=16 F=3", "pool": "pool max F=2", "fc": "fc 10", "residual": "residual {"}.get(kind, kind)


def _short(v: int | float) -> str:
    text = repr(v) if isinstance(v, float) else str(v)  # as written: 2.0, not 2
    return text if len(text) < 24 else f"{text[:10]}…({len(text)} digits)"


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
        if isinstance(expr, ast.Sizes):
            return _text(expr.values)
        if isinstance(expr, ast.Neg):
            return f"-{text(expr.operand)}"
        return f"{text(expr.left)}{expr.op}{text(expr.right)}"

    return text(arg.value) if arg.key is None else f"{arg.key.text}={text(arg.value)}"


__all__ = ["expand", "did_you_mean", "KEYWORDS", "INITS", "REQUIRED"]
