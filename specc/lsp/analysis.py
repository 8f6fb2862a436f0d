"""One document, checked: what `specc check` would say about it, kept for the editor's questions.

Positions are 0-based lines and characters counted in code points, as Python indexes a line; the
server converts them to the client's units (UTF-16 by default) on the way out.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from lsprotocol import types

from .. import ast
from ..api import loads
from ..check import Report, Row
from ..errors import Diagnostic, Diagnostics, Source, Span, SpeccError
from ..parse import parse_spec

SEVERITY = {"error": types.DiagnosticSeverity.Error, "warning": types.DiagnosticSeverity.Warning}


def to_range(span: Span | None) -> types.Range:
    """specc's 1-based, end-exclusive span as an LSP range; a diagnostic without one sits at the file's start."""
    if span is None:
        return types.Range(types.Position(0, 0), types.Position(0, 0))
    return types.Range(types.Position(span.line - 1, span.column - 1), types.Position(span.end_line - 1, span.end_column - 1))


@dataclass
class Analysis:
    text: str
    uri: str
    path: str
    diagnostics: list[Diagnostic]
    checked: Report | None  # the report of the text itself; None where it has errors

    @functools.cached_property
    def _figures(self) -> tuple[Report | None, list[int]]:
        """The report the editor's figures come from, and the lines left out of it.

        Where the text has errors, the same text with the lines of the errors left out, if that
        checks: a line being typed (`conv K=`) is an error at almost every keystroke, and the shapes
        of every other line should not blink out and back while it is. Worked out on the first
        hover or inlay request, so that diagnostics never wait for it.
        """
        if self.checked is not None:
            return self.checked, []
        lines = sorted({d.span.line for d in self.diagnostics if d.is_error and d.span})
        report = _check_without(self.text, self.path, lines) if lines else None
        return (report, lines) if report else (None, [])

    @property
    def report(self) -> Report | None:
        return self._figures[0]

    @property
    def left_out(self) -> list[int]:
        """The lines with errors that `report` was checked without."""
        return self._figures[1]

    @functools.cached_property
    def statements(self) -> dict[int, list[int]]:
        """Line (1-based) -> indices into `rows` of the statements written on it: one per time the
        statement runs (a line of a block body runs once per call), not the layers a call expands to."""
        return _statements(self.rows)

    @property
    def rows(self) -> list[Row]:
        return self.report.rows if self.report else []

    def rows_at(self, line: int) -> list[Row]:
        return [self.rows[i] for i in self.statements.get(line, [])]

    def inside(self, index: int) -> list[Row]:
        """The rows a group row holds: those after it, deeper, up to the next at its depth."""
        rows, depth = self.rows, self.rows[index].depth
        end = next((j for j in range(index + 1, len(rows)) if rows[j].depth <= depth), len(rows))
        return rows[index + 1 : end]

    @functools.cached_property
    def spec(self) -> ast.Spec | None:
        """The syntax tree, or as much as the parser recovered around syntax errors; parsed on first use."""
        return parse_spec(Source(self.text, self.uri), Diagnostics()).spec  # its errors are in self.diagnostics already

    def lsp_diagnostics(self) -> list[types.Diagnostic]:
        return [self._lsp(d) for d in self.diagnostics]

    def _lsp(self, d: Diagnostic) -> types.Diagnostic:
        # Editors show the message alone, so the hint travels in it; the call chain becomes related information.
        message = f"{d.message}\nhint: {d.hint}" if d.hint else d.message
        related = [types.DiagnosticRelatedInformation(types.Location(self.uri, to_range(span)), text) for text, span in d.notes]
        return types.Diagnostic(to_range(d.span), message, SEVERITY[d.severity], source="specc", related_information=related or None)


def analyse(text: str, uri: str, path: str) -> Analysis:
    """Check `text` as `specc check` checks the file at `path`: the same messages, spans, hints and warnings."""
    try:
        report = loads(text, path).check()
    except SpeccError as err:
        return Analysis(text, uri, path, err.diagnostics, None)
    return Analysis(text, uri, path, list(report.warnings), report)


def _check_without(text: str, path: str, lines: list[int]) -> Report | None:
    """The report of `text` with `lines` (1-based) blanked, or None where that does not check either."""
    kept = text.split("\n")
    for line in lines:
        if line <= len(kept):
            kept[line - 1] = ""
    try:
        return loads("\n".join(kept), path).check()
    except SpeccError:
        return None


def _statements(rows: list[Row]) -> dict[int, list[int]]:
    """Index the rows by the line of their statement, keeping only the outermost row of each statement.

    A call `layer1: bottleneck(64) x3` gives a repeat row and three call rows, all on its line, and a
    residual's projection rows sit on the residual's line: the row whose parent is on another line
    is the statement's own.
    """
    out: dict[int, list[int]] = {}
    parents: list[int] = []  # the line of the open group at each depth
    for i, row in enumerate(rows):
        del parents[row.depth :]
        if not parents or parents[-1] != row.line:
            out.setdefault(row.line, []).append(i)
        if row.is_group:
            parents.append(row.line)
    return out
