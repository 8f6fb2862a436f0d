"""One document, checked: what `specc check` would say about it, kept for the editor's questions.

Positions are 0-based lines and characters counted in code points, as Python indexes a line; the
server converts them to the client's units (UTF-16 by default) on the way out.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from lsprotocol import types

from .. import ast
from ..api import loads
from ..check import Report, Row
from ..errors import Diagnostic, Span, SpeccError
from ..parse import ParseError, parse

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
    diagnostics: list[Diagnostic]
    report: Report | None  # None where the check found an error and the file without its lines fails too
    # line (1-based) -> indices into report.rows of the statements written on it: one per time the
    # statement runs (a line of a block body runs once per call), not the layers a call expands to
    statements: dict[int, list[int]] = field(default_factory=dict)
    left_out: list[int] = field(default_factory=list)  # lines with errors that `report` was checked without

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
        try:
            return parse(self.text, self.uri)
        except ParseError as err:
            return err.recovered
        except SpeccError:
            return None

    def lsp_diagnostics(self) -> list[types.Diagnostic]:
        return [self._lsp(d) for d in self.diagnostics]

    def _lsp(self, d: Diagnostic) -> types.Diagnostic:
        # Editors show the message alone, so the hint travels in it; the call chain becomes related information.
        message = f"{d.message}\nhint: {d.hint}" if d.hint else d.message
        related = [types.DiagnosticRelatedInformation(types.Location(self.uri, to_range(span)), text) for text, span in d.notes]
        return types.Diagnostic(to_range(d.span), message, SEVERITY[d.severity], source="specc", related_information=related or None)


def analyse(text: str, uri: str, path: str) -> Analysis:
    """Check `text` as `specc check` checks the file at `path`: the same messages, spans, hints and warnings.

    Where there are errors, the figures come from the same text with the lines of the errors left
    out, if that checks: a line being typed (`conv K=`) is an error at almost every keystroke, and
    the shapes of every other line should not blink out and back while it is.
    """
    try:
        report = loads(text, path).check()
    except SpeccError as err:
        lines = sorted({d.span.line for d in err.diagnostics if d.is_error and d.span})
        report = _check_without(text, path, lines) if lines else None
        if report is None:
            return Analysis(text, uri, err.diagnostics, None)
        return Analysis(text, uri, err.diagnostics, report, _statements(report.rows), lines)
    return Analysis(text, uri, list(report.warnings), report, _statements(report.rows))


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
