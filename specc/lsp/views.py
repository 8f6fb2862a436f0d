"""Hover and inlay-hint text, drawn from the checker's rows (compute first, draw second)."""

from __future__ import annotations

from .. import ast
from ..check import Row
from ..errors import Span
from ..shapes import shape_text
from . import outline
from .analysis import Analysis

MAX_SHOWN = 12  # rows listed in one hover: a block called 16 times lists the first dozen and counts the rest
MAX_SHAPES = 3  # distinct shapes in one inlay hint: a block body line shows its first few
MAX_USES = 3  # uses of a block call expanded in one hover (a call inside a block runs once per outer call)


def inlay_label(rows: list[Row]) -> str | None:
    """`→ 64×56×56` for a line whose statement runs once; `→ 64×56×56 | 128×28×28 …` for a block's line."""
    shapes = list(dict.fromkeys(shape_text(r.output_shape) for r in rows))
    if not shapes:
        return None
    more = " …" if len(shapes) > MAX_SHAPES else ""
    return "→ " + " | ".join(shapes[:MAX_SHAPES]) + more


def inlay_hints(analysis: Analysis, first: int, last: int) -> list[tuple[int, int, str]]:
    """(0-based line, character at the end of its code, label) for every checked line in [first, last]."""
    lines = analysis.text.split("\n")
    out = []
    for line in range(first + 1, min(last, len(lines) - 1) + 2):
        label = inlay_label(analysis.rows_at(line))
        if label:
            out.append((line - 1, _code_end(lines[line - 1]), label))
    return out


def _code_end(text: str) -> int:
    """Where the code of a line ends: before its comment and the blanks ahead of it.

    A `#` inside a string would cut short, but strings only appear in `train { }`, which has no shape.
    """
    code = text.split("#", 1)[0].rstrip("\r").rstrip()
    return len(code)


def hover(analysis: Analysis, line: int) -> str | None:
    """Markdown for the statement on `line` (1-based): a block's definition, a block call, or a layer."""
    text = _hover(analysis, line)
    note = provisional(analysis)
    return f"{text}\n\n*{note}*" if text and note else text


def provisional(analysis: Analysis) -> str | None:
    """What to say of figures checked without the lines that have errors."""
    if not analysis.left_out:
        return None
    lines = ", ".join(map(str, analysis.left_out))
    where = f"line {lines}" if len(analysis.left_out) == 1 else f"lines {lines}"
    return f"figures as if {where} were left out, until the errors there are fixed"


def _hover(analysis: Analysis, line: int) -> str | None:
    defined = outline.defined_at(analysis.spec, line)
    if defined:
        return definition_hover(analysis.text, defined, outline.calls_of(analysis.spec, defined.name.text))
    rows = analysis.rows_at(line)
    if not rows:
        return None
    block = outline.called_block(analysis.spec, line)
    return call_hover(analysis, block, line) if block else layer_hover(rows)


def layer_hover(rows: list[Row]) -> str:
    """Markdown for a layer's line: one use in full, or a line per use when it is in a block's body."""
    if len(rows) == 1:
        return _one(rows[0])
    listing = [
        f"{_named(r)} → {shape_text(r.output_shape)}"
        + (f": {r.formula}" if r.formula else "")
        + f" · {r.params:,} params · {r.macs:,} MACs · RF {r.receptive_field}"
        for r in rows
    ]
    return f"**{rows[0].kind}**, run {len(rows)} times:\n\n" + _bullets(listing)


def _one(row: Row) -> str:
    head = (
        f"**{row.name}** `{row.kind}` → **{shape_text(row.output_shape)}**"
        if row.name
        else f"`{row.kind}` → **{shape_text(row.output_shape)}**"
    )
    out = [head]
    if row.formula:
        out.append(f"(W − F + 2P)/S + 1 = {row.formula}")
    out.append(f"params {row.params:,} · MACs {row.macs:,} · receptive field {row.receptive_field}")
    return "\n\n".join(out)


def call_hover(analysis: Analysis, block: ast.BlockDef, line: int) -> str:
    """Markdown for a block call: the block's signature, then what each use of the line expands to."""
    out = [f"```specc\n{signature(analysis.text, block)}\n```"]
    uses = analysis.statements.get(line, [])
    for index in uses[:MAX_USES]:
        row = analysis.rows[index]
        inner = analysis.inside(index)
        out.append(f"{_one(row)}\n\nexpands to {sum(not r.is_group for r in inner):,} layers:")
        out.append(_bullets([f"{_named(r)} → {shape_text(r.output_shape)}" for r in inner], [r.depth - row.depth - 1 for r in inner]))
    if len(uses) > MAX_USES:
        out.append(f"… and {len(uses) - MAX_USES:,} more uses of this line")
    return "\n\n".join(out)


def definition_hover(text: str, block: ast.BlockDef, calls: list[int]) -> str:
    """Markdown for a block's definition: its signature and the lines that call it."""
    where = f"called on line{'s' if len(calls) > 1 else ''} {', '.join(map(str, calls))}" if calls else "never called"
    return f"```specc\n{signature(text, block)}\n```\n\n{where}"


def signature(text: str, block: ast.BlockDef) -> str:
    """`block bottleneck(K, S=1)`, defaults as the user wrote them."""
    params = [p.name.text + (f"={source_of(text, p.default.span)}" if p.default is not None else "") for p in block.params]
    return f"block {block.name.text}({', '.join(params)})"


def source_of(text: str, span: Span) -> str:
    """The text a span covers, as the user wrote it."""
    lines = text.split("\n")
    if span.line == span.end_line:
        return lines[span.line - 1][span.column - 1 : span.end_column - 1]
    return "\n".join(
        [lines[span.line - 1][span.column - 1 :], *lines[span.line : span.end_line - 1], lines[span.end_line - 1][: span.end_column - 1]]
    )


def _named(row: Row) -> str:
    """`layer1.0.conv1` conv; an unnamed group (a residual, a seq) by its kind alone."""
    return f"`{row.name}` {row.kind}" if row.name else row.kind


def _bullets(items: list[str], depths: list[int] | None = None) -> str:
    """A markdown list of at most MAX_SHOWN items, nested by `depths`."""
    depths = depths or [0] * len(items)
    shown = [f"{'  ' * depth}- {item}" for item, depth in zip(items[:MAX_SHOWN], depths, strict=False)]
    if len(items) > MAX_SHOWN:
        shown.append(f"- … and {len(items) - MAX_SHOWN:,} more")
    return "\n".join(shown)
