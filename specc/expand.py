"""Syntax tree to network tree: blocks inlined, repeats unrolled, arguments checked, names given.

Naming (the names become module names, so a state dict reads like the spec):
- `name:` before a statement names that layer, or the namespace its block call or group opens.
- An unnamed layer is named after its kind and a counter in its namespace: conv1, bn1, conv2.
- A block call opens a namespace: its label, or the block's name and a counter (basic1).
- `x N` opens a namespace whose members are numbered 0..N-1, like nn.Sequential; so does a
  named `seq`, and a repeat inside a named `seq` continues its numbering.
- Unnamed `residual`, `concat`, `gate` and `seq` open none: their layers live beside their neighbours.

This module walks statements, groups and block calls. Values, arithmetic and binding a call's
arguments are in values.py; each layer's and group's arguments are checked in arguments.py; names
are handed out by scopes.py; what a statement that cannot be expanded is reported as is in
statement_errors.py, with suggestions from suggest.py.
"""

from __future__ import annotations

from typing import Any

from . import ast
from .arguments import GROUP_FIELDS, Arguments
from .errors import Diagnostics, Source, Span
from .ir import Group, Layer, Network, Node
from .layers import GROUP_KINDS, KINDS, REQUIRED
from .scopes import Context, Scope
from .statement_errors import (
    KEYWORDS,
    bare_word,
    empty_body_hint,
    glued_repeat,
    misplaced_header,
    misspelt_block,
    needs_body,
    stray_items,
    unknown_block,
    unknown_word,
)
from .suggest import did_you_mean
from .train_settings import read_section
from .values import MAX_ERRORS, MAX_INT, StopExpanding, argument_text, value_text

INITS = ("default", "kaiming", "xavier")
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
        self.misspelt = {st.items[0].value.name for st in spec.body if misspelt_block(st)}

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
                f"input {value_text(shape)} is not a shape specc can take",
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
            if st.span.line >= before or glued_repeat(st, ctx, self.source, self.diagnostics):
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
        if glued_repeat(st, ctx, self.source, self.diagnostics):
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
            misplaced_header(st, ctx, self.source, self.diagnostics)
            return None
        if st.body is not None:
            return self.group(st, items, ctx, name)
        if word in self.blocks:
            return self.call(st, items, ctx, name)
        if st.call_args is not None:
            unknown_block(st, ctx, self.diagnostics, self.blocks, self.shadowing, self.misspelt)
            return None
        if word in KINDS:
            return self.layer(st, items, ctx, name)
        if word in GROUP_FIELDS:
            needs_body(st, ctx, self.source, self.diagnostics)
            return None
        unknown_word(st, ctx, self.diagnostics, self.blocks)
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
        if misspelt_block(st):
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
            self.diagnostics.error(f"'{word}' has an empty body", st.name.span, empty_body_hint(word), ctx.calls)
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
            group.projection = _projection(group)

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
            stray_items(items, ctx, self.diagnostics)
        env = self.bind(block, args, ctx, st.name.span)
        if env is None:
            return None
        title = f"{block.name.text}({', '.join(argument_text(a, ctx.env) for a in args)})"
        scope = Scope(ctx.scope.path + (name,))
        calls = ctx.calls + [(f"in block '{block.name.text}', called here", st.name.span)]
        inner = ctx.inside(scope, env=env, calls=calls, blocks=ctx.blocks + (block.name.text,))
        children = self.statements(block.body, inner)
        if stray or block.name.text in self.broken:
            return None  # expanded for the errors inside; the arguments meant, or the definition, are in doubt
        return Group("block", title, scope.path, children, st.name.span, st.span.line, ctx.frozen, list(ctx.calls))


def _projection(group: Group) -> list[Layer]:
    """The torchvision shortcut: a 1×1 conv without bias, then batchnorm, each with its kind's defaults.

    K and S follow the body's output channels and stride, so they are the checker's to fill in.
    """
    conv, bn = KINDS["conv"], KINDS["batchnorm"]
    base = group.path + (group.shortcut_name,)
    conv_args = {**conv.defaults(), "K": None, "F": 1, "S": None, "bias": False}
    return [
        Layer(base + (str(i),), kind, args, group.span, group.line, group.frozen, calls=group.calls)
        for i, (kind, args) in enumerate(((conv, conv_args), (bn, bn.defaults())))
    ]


def _refs(expr: ast.Expr | None):
    """Every bare word in an expression."""
    if isinstance(expr, ast.Ref):
        yield expr
    elif isinstance(expr, ast.Neg):
        yield from _refs(expr.operand)
    elif isinstance(expr, ast.BinOp):
        yield from _refs(expr.left)
        yield from _refs(expr.right)


def _is_word(arg: ast.Arg, word: str) -> bool:
    return bare_word(arg) == word


def _stem(path: str) -> str:
    name = path.rsplit("/", 1)[-1].split(".", 1)[0]
    return name if name.isidentifier() else "network"


__all__ = ["expand", "argument_errors", "KEYWORDS", "INITS", "REQUIRED"]
