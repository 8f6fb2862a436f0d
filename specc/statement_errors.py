"""What a statement that cannot be expanded is reported as: an unknown word, a header line inside
braces, a block call written like a layer, a repeat glued to its statement, a misspelt `block`.

Each report says what specc expected and how to write it; the expander calls these where a
statement fails, and puts an unknown group in its place.
"""

from __future__ import annotations

import re

from . import ast
from .arguments import GROUP_FIELDS, kind_example
from .errors import Diagnostics, Source
from .layers import KINDS
from .scopes import Context
from .suggest import did_you_mean

KEYWORDS = ("network", "input", "init", "train", "block")  # the header words, read only at the top of a file


def glued_repeat(st: ast.Statement, ctx: Context, source: Source, diagnostics: Diagnostics) -> bool:
    """`b(4)x2`: the lexer reads a repeat only after a space, so that `F=3x3` is never one."""
    glued = next((a for a in st.items if re.fullmatch(r"x\d+", bare_word(a) or "")), None)
    if glued is None:
        return False
    before = source.line_text(glued.span.line)[: glued.span.column - 1].rstrip()
    diagnostics.error("a repeat count needs a space before it", glued.span, f"write `{before} {glued.value.name}`", ctx.calls)
    return True


def misplaced_header(st: ast.Statement, ctx: Context, source: Source, diagnostics: Diagnostics) -> None:
    """`input`, `network`, `init`, `train` or `block` inside braces: the grammar reads them only at the top."""
    word = st.name.text
    if word == "block":
        message = "a block is defined at the top level of the file, not inside braces"
        hint = "move the definition out of the group, and call the block here by name, e.g. basic(64)"
    else:
        line = source.line_text(st.span.line).split("#", 1)[0].strip()
        message = f"'{word}' belongs at the top of the file, not inside braces"
        hint = f"move `{line}` above the layers, outside every group and block"
    diagnostics.error(message, st.name.span, hint, ctx.calls)


def unknown_block(st: ast.Statement, ctx: Context, diagnostics: Diagnostics, blocks, shadowing: set[str], misspelt: set[str]) -> None:
    """`name(...)` where no block `name` is defined; silent where the definition was reported instead:
    a block named like a layer (`shadowing`), or one whose `block` keyword is misspelt."""
    word = st.name.text
    if word in shadowing:
        return
    if word in KINDS or word in GROUP_FIELDS:
        diagnostics.error(
            f"'{word}' is a layer, not a block: its arguments are not written in parentheses",
            st.name.span,
            f"write e.g. `{kind_example(word)}`",
            ctx.calls,
        )
        return
    if word in misspelt:
        return
    hint = did_you_mean(word, blocks) or "define it first with `block NAME(ARGS) { ... }`"
    diagnostics.error(f"unknown block '{word}'", st.name.span, hint, ctx.calls)


def unknown_word(st: ast.Statement, ctx: Context, diagnostics: Diagnostics, blocks) -> None:
    """A line that starts with a word specc does not know: a misspelt layer, block or keyword."""
    word = st.name.text
    suggestion = did_you_mean(word, [*KINDS, *blocks, *GROUP_FIELDS, *KEYWORDS])
    what = "keyword" if suggestion and suggestion.split("'")[1] in KEYWORDS else "layer"
    hint = suggestion or f"the layers are {', '.join(KINDS)}; a block must be defined before it is called"
    diagnostics.error(f"unknown {what} '{word}'", st.name.span, hint, ctx.calls)


def needs_body(st: ast.Statement, ctx: Context, source: Source, diagnostics: Diagnostics) -> None:
    """`residual` without braces."""
    head = source.line_text(st.span.line).split("#", 1)[0].strip()
    hint = f"end the line with '{{' (`{head} {{`), put the layers on the lines after it, then '}}'"
    diagnostics.error(f"'{st.name.text}' needs a body in braces", st.name.span, hint, ctx.calls)


def stray_items(items: list[ast.Arg], ctx: Context, diagnostics: Diagnostics) -> None:
    """Words after a block call's parentheses: a misspelt `freeze`, or arguments outside them."""
    first = items[0]
    word = bare_word(first)
    if word is not None and did_you_mean(word, ["freeze"]):
        diagnostics.error(f"a block call does not take '{word}' here", first.span, "did you mean 'freeze'?", ctx.calls)
        return
    diagnostics.error(
        "a block call takes its arguments inside the parentheses",
        first.span,
        "write e.g. basic(64, S=2), then x2 to repeat it",
        ctx.calls,
    )


def empty_body_hint(word: str) -> str:
    if word == "concat":
        return "put the branches inside, one a line: a layer, a block call, or a seq { } of several layers"
    return f"put at least one layer inside, or remove the `{word}`"


def misspelt_block(st: ast.Statement) -> bool:
    """`blok b(K) {`: a word like `block`, then a name, then a body."""
    word = st.name.text
    if st.body is None or word in GROUP_FIELDS or word == "block" or not st.items:
        return False
    return bare_word(st.items[0]) is not None and did_you_mean(word, ["block"]) is not None


def bare_word(arg: ast.Arg) -> str | None:
    """The word of a positional bare-word argument (`freeze`, `x2`), else None."""
    return arg.value.name if arg.key is None and isinstance(arg.value, ast.Ref) else None
