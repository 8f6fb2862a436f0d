"""Syntax tree to network tree: blocks inlined, repeats unrolled, arguments checked, names given.

Naming (the names become module names, so a state dict reads like the spec):
- `name:` before a statement names that layer, or the namespace its block call or group opens.
- An unnamed layer is named after its kind and a counter in its namespace: conv1, bn1, conv2.
- A block call opens a namespace: its label, or the block's name and a counter (basic1).
- `x N` opens a namespace whose members are numbered 0..N-1, like nn.Sequential; so does a
  named `seq`, and a repeat inside a named `seq` continues its numbering.
- Unnamed `residual`, `concat`, `gate` and `seq` open none: their layers live beside their neighbours.
"""

from __future__ import annotations

import re
from typing import Any

from . import ast
from .arguments import MAX_ERRORS, MAX_INT, Arguments, StopExpanding, Value, kind_example, value_text
from .errors import Diagnostics, Source, Span
from .ir import Group, Layer, Network, Node
from .layers import GROUP_KINDS, KINDS, REQUIRED, Field
from .scopes import Context, Scope
from .suggest import did_you_mean
from .train_settings import read_section

KEYWORDS = ("network", "input", "init", "train", "block")
INITS = ("default", "kaiming", "xavier")
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
MAX_CALL_DEPTH = 32
# Limits that keep a runaway spec (`x1000000`, a block that calls itself twice) from hanging the
# checker: no real network comes near them.
MAX_NODES = 100_000


def expand(spec: ast.Spec, source: Source, diagnostics: Diagnostics) -> Network | None:
    """The expand stage: the network tree, every mistake into `diagnostics`.

    Where a statement fails, an `unknown` group stands in its place, so the tree is built as far as
    it can be. None where nothing in it can be trusted: no usable input shape, expansion cut short.
    """
    expander = Expander(spec, source, diagnostics)
    expander.define_blocks()
    return expander.run()


def argument_errors(spec: ast.Spec, source: Source, diagnostics: Diagnostics, before: float) -> None:
    """The argument errors of layers and groups outside blocks, on lines before `before`, into `diagnostics`.

    For a spec with syntax errors: `spec` is the spec as read without the lines that failed. An
    argument's mistake depends on its own line alone, unless the line sits in a block (its words may
    be parameters), so only lines known to be outside every block are looked at. The definitions
    are not looked at: their errors may be echoes of the lines that failed.
    """
    expander = Expander(spec, source, diagnostics)
    try:
        expander.argument_errors(spec.body, Context(Scope(())), before)
    except (RecursionError, StopExpanding):
        pass  # nested too deeply to look into, or errors enough: the syntax errors are enough


class Expander(Arguments):
    def __init__(self, spec: ast.Spec, source: Source, diagnostics: Diagnostics):
        self.spec, self.source, self.diagnostics = spec, source, diagnostics
        self.first_diagnostic = len(diagnostics)  # MAX_ERRORS counts this stage's own
        self.nodes = 0
        self.blocks: dict[str, ast.BlockDef] = {}
        self.bad_defaults: set[tuple[str, str]] = set()  # (block, parameter): reported at the definition
        self.shadowing: set[str] = set()  # blocks named like a layer: reported at the definition
        self.broken: set[str] = set()  # blocks whose definition is in doubt: what their calls give is unknown
        self.checkable = True  # False where an error leaves nothing to shape-check against
        # `blok b(K) {` is reported once, as a misspelt keyword; its calls are not unknown blocks as well
        self.misspelt = {st.items[0].value.name for st in spec.body if _misspelt_block(st)}

    def define_blocks(self) -> None:
        """Each block definition by name, its mistakes reported once here rather than at every call."""
        for block in self.spec.blocks:
            name = block.name.text
            if name in KINDS or name in GROUP_FIELDS:
                # not defined at all, so its calls and its own body are not reported again
                what = "layer" if name in KINDS else "group"
                hint = f"call the block something else, e.g. {name}_block"
                self.diagnostics.error(f"a block cannot be called '{name}': that is a {what}", block.name.span, hint)
                self.shadowing.add(name)
                continue
            if name in self.blocks:
                first = [(f"the first '{name}' is defined here", self.blocks[name].name.span)]
                self.diagnostics.error(f"a block named '{name}' is defined twice", block.name.span, "rename one of them", notes=first)
                self.broken.add(name)  # either definition may be the one meant
                continue
            self.blocks[name] = block
            self._check_params(block)

    def _check_params(self, block: ast.BlockDef) -> None:
        """A block's parameter list: each name once, and defaults that use only the parameters before them."""
        seen: dict[str, Span] = {}
        order = [p.name.text for p in block.params]
        for i, param in enumerate(block.params):
            name = param.name.text
            if name in seen:
                first = [(f"the first '{name}' is declared here", seen[name])]
                hint = "each parameter needs its own name; remove or rename this one"
                self.diagnostics.error(f"block '{block.name.text}' has two parameters named '{name}'", param.name.span, hint, notes=first)
                self.broken.add(block.name.text)
            seen.setdefault(name, param.name.span)
            later = next((r for r in _refs(param.default) if r.name in order[i:]), None)
            if later is not None:
                self.bad_defaults.add((block.name.text, name))
                what = f"'{name}' itself" if later.name == name else f"'{later.name}', which comes after it"
                hint = f"a default may use only the parameters before it, as in block b(K, S=K/2); give {name} a value, e.g. {name}=1"
                self.diagnostics.error(f"the default of '{name}' cannot refer to {what}", later.span, hint)

    def too_many_errors(self) -> bool:
        return len(self.diagnostics) - self.first_diagnostic >= MAX_ERRORS

    def run(self) -> Network | None:
        input_shape = self._input_shape()
        try:
            body = self.statements(self.spec.body, Context(Scope(())))
        except StopExpanding:
            body, self.checkable = [], False
        except RecursionError:
            body, self.checkable = [], False
            self.diagnostics.error("the spec nests too deeply to expand", Span(1, 1, 1, 2), "use blocks instead of deep nesting")
        if not self.spec.body:
            self.diagnostics.error("the spec has no layers", None, "add layers after the `input` line, one per line")
        network = Network(
            name=self.spec.network.text if self.spec.network else _stem(self.source.path),
            input_shape=input_shape,
            body=body,
            init=self._init(),
            train=self._train(),
            source_text=self.source.text,
            source_path=self.source.path,
        )
        return network if self.checkable else None

    def _input_shape(self) -> tuple[int, ...]:
        shape, span = self.spec.input_shape, self.spec.input_span
        if shape is None:
            self.diagnostics.error(
                "the spec has no `input` line", None, "add e.g. `input 3x32x32` (channels x height x width) before the layers"
            )
            self.checkable = False
            return (1, 1, 1)
        if len(shape) > 4 or 0 in shape or max(shape) > MAX_INT:
            self.checkable = False
            self.diagnostics.error(
                f"input {'x'.join(map(str, shape))} is not a shape specc can take",
                span,
                "write C x L (1-D), C x H x W (2-D) or C x D x H x W (3-D), every size at least 1",
            )
        return shape

    def _train(self) -> dict[str, Any]:
        """The `train { }` settings, each checked against its declaration in train_settings.py."""
        values, problems = read_section([(setting, self.evaluate(setting.value, {})) for setting in self.spec.train])
        for message, span, hint in problems:
            self.diagnostics.error(message, span, hint)
        return values

    def _init(self) -> str:
        if self.spec.init is None:
            return "default"
        if self.spec.init.text not in INITS:
            self.diagnostics.error(
                f"unknown initialisation '{self.spec.init.text}'",
                self.spec.init.span,
                did_you_mean(self.spec.init.text, INITS) or f"choose one of {', '.join(INITS)}",
            )
        return self.spec.init.text

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
            self.diagnostics.error(
                f"the network grows past {MAX_NODES:,} layers and groups here",
                st.name.span,
                "check repeat counts (x N) and blocks that call other blocks",
                [],
            )
            raise StopExpanding
        if self.too_many_errors():
            raise StopExpanding

    def statement(self, st: ast.Statement, ctx: Context) -> list[Node]:
        if self._glued_repeat(st, ctx):
            return [self.unknown(st, ctx)]
        items, frozen = self._flags(st.items, ctx)
        ctx = ctx.inside(frozen=ctx.frozen or frozen)
        if st.repeat is None:
            node = self.single(st, items, ctx, ctx.scope.take(st.label, self._base(st), self.diagnostics) if self._known(st) else "")
            return [node] if node is not None else []
        count = self.repeat_count(st.repeat, st.repeat_span, ctx, MAX_NODES)
        if count is None:
            return [self.unknown(st, ctx)]
        if count == 0:  # `x N-1` with N=1: no copies, and no namespace for them
            return []
        if ctx.scope.numbered and st.label is None:  # continue the enclosing numbering
            return [self.single(st, items, ctx, ctx.scope.take(None, "", self.diagnostics)) for _ in range(count)]
        name = ctx.scope.take(st.label, self._base(st), self.diagnostics)
        scope = Scope(ctx.scope.path + (name,), numbered=True)
        inner = ctx.inside(scope)
        children = [self.single(st, items, inner, scope.take(None, "", self.diagnostics)) for _ in range(count)]
        return [Group("repeat", f"x{count}", scope.path, children, st.name.span, st.span.line, ctx.frozen, list(ctx.calls))]

    def _glued_repeat(self, st: ast.Statement, ctx: Context) -> bool:
        """`b(4)x2`: the lexer reads a repeat only after a space, so that `F=3x3` is never one."""
        glued = next((a for a in st.items if re.fullmatch(r"x\d+", _bare_word(a) or "")), None)
        if glued is None:
            return False
        before = self.source.line_text(glued.span.line)[: glued.span.column - 1].rstrip()
        self.diagnostics.error("a repeat count needs a space before it", glued.span, f"write `{before} {glued.value.name}`", ctx.calls)
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
            self.diagnostics.error(f"'{word}' needs a body in braces", st.name.span, hint, ctx.calls)
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
        self.diagnostics.error(message, st.name.span, hint, ctx.calls)

    def _unknown_block(self, st: ast.Statement, ctx: Context) -> None:
        word = st.name.text
        if word in self.shadowing:
            return
        if word in KINDS or word in GROUP_FIELDS:
            self.diagnostics.error(
                f"'{word}' is a layer, not a block: its arguments are not written in parentheses",
                st.name.span,
                f"write e.g. `{kind_example(word)}`",
                ctx.calls,
            )
            return
        if word in self.misspelt:
            return
        hint = did_you_mean(word, self.blocks) or "define it first with `block NAME(ARGS) { ... }`"
        self.diagnostics.error(f"unknown block '{word}'", st.name.span, hint, ctx.calls)

    def _unknown_word(self, st: ast.Statement, ctx: Context) -> None:
        """A line that starts with a word specc does not know: a misspelt layer, block or keyword."""
        word = st.name.text
        suggestion = did_you_mean(word, [*KINDS, *self.blocks, *GROUP_FIELDS, *KEYWORDS])
        what = "keyword" if suggestion and suggestion.split("'")[1] in KEYWORDS else "layer"
        hint = suggestion or f"the layers are {', '.join(KINDS)}; a block must be defined before it is called"
        self.diagnostics.error(f"unknown {what} '{word}'", st.name.span, hint, ctx.calls)

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
            self.diagnostics.error(f"unknown keyword '{word}'", st.name.span, "did you mean 'block'?", ctx.calls)
            return None
        if word not in GROUP_FIELDS:
            self.diagnostics.error(
                f"'{word}' cannot have a body",
                st.name.span,
                did_you_mean(word, GROUP_FIELDS) or "groups are seq, residual, concat and gate",
                ctx.calls,
            )
            return None
        resolved = self.arguments(word, GROUP_FIELDS[word], items, ctx, st.name.span)
        named = st.label is not None or name.isdigit()
        scope = Scope(ctx.scope.path + (name,), numbered=word == "seq") if named else ctx.scope
        inner = ctx.inside(scope)
        children = self.statements(st.body, inner)
        if not st.body:
            self.diagnostics.error(f"'{word}' has an empty body", st.name.span, _empty_body_hint(word), ctx.calls)
        group = Group(word, word, scope.path, children, st.name.span, st.span.line, ctx.frozen, list(ctx.calls), named)
        group.failed = resolved is None or not st.body  # `residual shortcut=projct`: how the body joins is unknown
        if resolved is not None and word == "residual":
            self._residual(group, resolved, scope, st, ctx)
        if resolved is not None and word == "concat" and resolved[0]["split"]:
            group.split, group.title = True, "concat split"
        return group

    def _residual(self, group: Group, resolved, scope: Scope, st: ast.Statement, ctx: Context) -> None:
        """The shortcut, and `drop=p` as a stochastic-depth layer at the end of the body, before the add."""
        args, spans = resolved
        group.shortcut, group.shortcut_first = args["shortcut"], args["shortcut_first"]
        if args["drop"]:
            kind = GROUP_KINDS["stochastic_depth"]
            path = scope.path + (scope.take(None, kind.short, self.diagnostics),)
            depth = Layer(path, kind, {"p": args["drop"]}, st.name.span, st.span.line, ctx.frozen, {"p": spans["drop"]}, list(ctx.calls))
            group.children.append(depth)
        if group.shortcut != "identity":
            group.shortcut_name = scope.take(None, "shortcut", self.diagnostics)

    def call(self, st: ast.Statement, items: list[ast.Arg], ctx: Context, name: str) -> Group | None:
        block = self.blocks[st.name.text]
        if block.name.text in ctx.blocks or len(ctx.blocks) >= MAX_CALL_DEPTH:
            self.diagnostics.error(
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
        word = _bare_word(first)
        if word is not None and did_you_mean(word, ["freeze"]):
            self.diagnostics.error(f"a block call does not take '{word}' here", first.span, "did you mean 'freeze'?", ctx.calls)
            return
        self.diagnostics.error(
            "a block call takes its arguments inside the parentheses",
            first.span,
            "write e.g. basic(64, S=2), then x2 to repeat it",
            ctx.calls,
        )


def _empty_body_hint(word: str) -> str:
    if word == "concat":
        return "put the branches inside, one a line: a layer, a block call, or a seq { } of several layers"
    return f"put at least one layer inside, or remove the `{word}`"


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


def _stem(path: str) -> str:
    name = path.rsplit("/", 1)[-1].split(".", 1)[0]
    return name if name.isidentifier() else "network"


def _show(arg: ast.Arg, env: dict[str, Value]) -> str:
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


__all__ = ["expand", "did_you_mean", "KEYWORDS", "INITS", "REQUIRED"]
