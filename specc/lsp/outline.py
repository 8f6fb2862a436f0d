"""Blocks and named layers in the syntax tree: go to definition, the outline, the calls on a line."""

from __future__ import annotations

import re
from collections.abc import Iterator

from lsprotocol import types

from .. import ast
from .analysis import to_range

WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def all_statements(spec: ast.Spec) -> Iterator[ast.Statement]:
    """Every statement, in block bodies and groups too."""
    for block in spec.blocks:
        yield from _walk(block.body)
    yield from _walk(spec.body)


def _walk(statements: list[ast.Statement]) -> Iterator[ast.Statement]:
    for st in statements:
        yield st
        yield from _walk(st.body or [])


def blocks(spec: ast.Spec | None) -> dict[str, ast.BlockDef]:
    return {b.name.text: b for b in spec.blocks} if spec else {}


def called_block(spec: ast.Spec | None, line: int) -> ast.BlockDef | None:
    """The block that the statement on `line` (1-based) calls, if it calls one."""
    defined = blocks(spec)
    if not defined:
        return None
    return next((defined[st.name.text] for st in all_statements(spec) if st.span.line == line and st.name.text in defined), None)


def defined_at(spec: ast.Spec | None, line: int) -> ast.BlockDef | None:
    """The block whose definition starts on `line` (1-based)."""
    return next((b for b in spec.blocks if b.name.span.line == line), None) if spec else None


def calls_of(spec: ast.Spec, name: str) -> list[int]:
    """The lines (1-based) of the statements that call block `name`."""
    return [st.span.line for st in all_statements(spec) if st.name.text == name]


def word_at(text: str, line: int, character: int) -> str | None:
    """The identifier under a 0-based position, or None."""
    lines = text.split("\n")
    if not 0 <= line < len(lines):
        return None
    return next((m.group() for m in WORD.finditer(lines[line]) if m.start() <= character <= m.end()), None)


def definition(spec: ast.Spec | None, word: str | None) -> types.Range | None:
    block = blocks(spec).get(word or "")
    return to_range(block.name.span) if block else None


def symbols(spec: ast.Spec | None, line_count: int) -> list[types.DocumentSymbol]:
    """The outline: each block, with the named layers inside it, then the named layers of the network."""
    if spec is None:
        return []
    out = []
    for block in spec.blocks:
        end = min(_last_line(block.body, block.name.span.line) + 1, line_count)  # the closing brace's line
        whole = types.Range(types.Position(block.name.span.line - 1, 0), types.Position(end - 1, 1))
        out.append(
            types.DocumentSymbol(
                name=block.name.text,
                kind=types.SymbolKind.Function,
                range=whole,
                selection_range=to_range(block.name.span),
                detail=f"block({', '.join(p.name.text for p in block.params)})",
                children=_named(block.body, line_count),
            )
        )
    return out + _named(spec.body, line_count)


def _named(statements: list[ast.Statement], line_count: int) -> list[types.DocumentSymbol]:
    out = []
    for st in statements:
        inner = _named(st.body or [], line_count)
        if st.label is None:
            out.extend(inner)  # a named layer inside an unnamed group still belongs in the outline
            continue
        end = min(_last_line(st.body, st.span.line) + 1, line_count) if st.body else st.span.end_line
        end_char = 1 if st.body else st.span.end_column - 1
        whole = types.Range(types.Position(st.span.line - 1, st.span.column - 1), types.Position(end - 1, end_char))
        kind = types.SymbolKind.Module if st.body else types.SymbolKind.Field
        out.append(types.DocumentSymbol(st.label.text, kind, whole, to_range(st.label.span), detail=st.name.text, children=inner or None))
    return out


def _last_line(statements: list[ast.Statement] | None, start: int) -> int:
    """The last line a list of statements reaches (nested bodies included), or `start` if empty."""
    last = start
    for st in statements or []:
        last = max(last, st.span.end_line, _last_line(st.body, st.span.end_line) + (1 if st.body else 0))
    return last
