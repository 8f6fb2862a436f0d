"""Views of a check report: the rich table and the JSON. Computing happens in check.py."""

from __future__ import annotations

from typing import Any

from .check import Report, Row, shown
from .errors import Diagnostic, Span
from .shapes import shape_text


def to_json(report: Report, file: str = "<string>") -> dict[str, Any]:
    return {
        "network": report.network,
        "input_shape": list(report.input_shape),
        "output_shape": list(report.output_shape) if report.output_shape else None,
        "total_params": report.total_params,
        "trainable_params": report.trainable_params,
        "frozen_params": report.frozen_params,
        "total_macs": report.total_macs,
        "param_mb": round(report.param_mb, 4),
        "activation_mb": round(report.activation_mb, 4),
        "layers": [_row_json(r) for r in report.layers],
        "groups": [_row_json(r) for r in report.rows if r.is_group],
        "warnings": [w.message for w in report.warnings],
        "diagnostics": diagnostics_json(report.warnings, file),
    }


def diagnostics_json(diagnostics: list[Diagnostic], file: str) -> list[dict[str, Any]]:
    """Errors and warnings for tools (editors, CI annotations): spans 1-based, end exclusive, as the text shows them."""
    return [
        {
            "file": file,
            **_span_json(d.span),
            "severity": d.severity,
            "message": d.message,
            "hint": d.hint,
            "notes": [{"message": text, "file": file, **_span_json(span)} for text, span in d.notes],
        }
        for d in diagnostics
    ]


def _span_json(span: Span | None) -> dict[str, int | None]:
    if span is None:  # a problem with the file as a whole: missing, unreadable
        return dict.fromkeys(("line", "column", "end_line", "end_column"))
    return {"line": span.line, "column": span.column, "end_line": span.end_line, "end_column": span.end_column}


def diagnostics_summary(diagnostics: list[Diagnostic], file: str) -> str:
    """One line for a person reading stderr while the JSON goes to a tool: `net.cnn: 2 errors, 1 warning`."""
    errors = sum(d.is_error for d in diagnostics)
    counts = [f"{n} {kind}{'s' if n != 1 else ''}" for n, kind in ((errors, "error"), (len(diagnostics) - errors, "warning")) if n]
    return f"{file}: {', '.join(counts)} (details as JSON on stdout)"


def _row_json(row: Row) -> dict[str, Any]:
    out = {
        "name": row.name,
        "kind": row.kind,
        "line": row.line,
        "output_shape": list(row.output_shape) if row.output_shape else None,
        "params": row.params,
        "macs": row.macs,
        "receptive_field": row.receptive_field,
        "depth": row.depth,
    }
    if not row.is_group:
        out["formula"] = row.formula
        out["frozen"] = row.frozen
    return out


def human(n: float, unit: str) -> str:
    """(1814073344, "MACs") -> 1.814 GMACs; small numbers stay exact: 112 MACs."""
    for size, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= size:
            return f"{n / size:.3f} {prefix}{unit}"
    return f"{n:g} {unit}"


_COLUMNS = (  # (header, right-aligned, droppable: the order in which a narrow terminal drops columns, 0 = never)
    ("name", False, 0),
    ("kind", False, 4),
    ("line", True, 3),
    ("output", True, 0),
    ("(W − F + 2P)/S + 1", False, 1),
    ("params", True, 0),
    ("MACs", True, 0),
    ("RF", True, 2),
)
_FORMULA = 4
MAX_ROWS = 5000  # rows drawn; a spec of 100,000 layers gets a note instead of a table of hundreds of megabytes


def table(report: Report, depth: int | None = None, width: int = 200):
    """The check table as rich Text, at most `width` cells wide where the columns that matter fit.

    Drawn here, not by rich's Table: a figure is never cut or wrapped. Where the table is too wide, whole
    columns go (the formula first, then RF, line and kind) and a note says so; names, shapes, params and
    MACs always stay. Drawing is linear in the rows, and stops after MAX_ROWS with a note.
    """
    from rich.cells import cell_len
    from rich.text import Text

    rows = [row for row in report.rows if shown(row.depth, depth)]
    drawn = rows[:MAX_ROWS]
    cells = [_cells(row) for row in drawn]
    widths = [max(map(cell_len, (header, *(c[i] for c in cells)))) for i, (header, _, _) in enumerate(_COLUMNS)]
    keep = _columns_that_fit(widths, width)
    out = Text(no_wrap=True, overflow="ignore")
    out.append(f"{report.network}: input {shape_text(report.input_shape)}\n")

    def rule(left: str, fill: str, middle: str, right: str) -> str:
        return left + middle.join(fill * (widths[i] + 2) for i in keep) + right + "\n"

    def line(texts: list[str], bar: str) -> str:
        pads = [" " * (widths[i] - cell_len(texts[i])) for i in keep]
        parts = [pad + texts[i] if _COLUMNS[i][1] else texts[i] + pad for i, pad in zip(keep, pads, strict=True)]
        return bar + " " + f" {bar} ".join(parts) + " " + bar + "\n"

    out.append(rule("┏", "━", "┳", "┓"))
    out.append(line([header for header, _, _ in _COLUMNS], "┃"), style="bold")
    out.append(rule("┡", "━", "╇", "┩"))
    for row, texts in zip(drawn, cells, strict=True):
        out.append(line(texts, "│"), style="bold" if row.is_group else None)
    out.append(rule("└", "─", "┴", "┘").rstrip("\n"))
    notes = []
    if len(rows) > len(drawn):
        notes.append(f"{len(rows) - len(drawn):,} more rows not drawn: --depth folds groups, --json lists every layer")
    dropped = ["formula" if i == _FORMULA else _COLUMNS[i][0] for i in range(len(_COLUMNS)) if i not in keep]
    if dropped:
        notes.append(f"left out to fit {width} columns: {', '.join(dropped)} (--json has them)")
    for note in notes:
        out.append(f"\nnote: {note}", style="dim")
    return out


def _columns_that_fit(widths: list[int], width: int) -> list[int]:
    """The columns to draw: all where they fit in `width`, else without the droppable ones, in their order."""
    keep = list(range(len(_COLUMNS)))
    for drop in sorted((order, i) for i, (_, _, order) in enumerate(_COLUMNS) if order):
        if sum(widths[i] + 3 for i in keep) + 1 <= width:
            break
        keep.remove(drop[1])
    return keep


def _cells(row: Row) -> list[str]:
    name = "  " * row.depth + (row.name or "·") + (" ❄" if row.frozen and not row.is_group else "")
    return [
        name,
        row.kind,
        str(row.line),
        shape_text(row.output_shape),
        row.formula or "",
        f"{row.params:,}",
        f"{row.macs:,}",
        str(row.receptive_field),
    ]


def totals(report: Report) -> str:
    return "\n".join(
        [
            f"output      {shape_text(report.output_shape)}",
            f"params      {report.total_params:,} ({report.trainable_params:,} trainable, {report.frozen_params:,} frozen)",
            f"MACs        {report.total_macs:,} ({human(report.total_macs, 'MACs')}, ≈{human(2 * report.total_macs, 'FLOPs')})",
            f"memory      {report.param_mb:.2f} MB of parameters, {report.activation_mb:.2f} MB of activations per sample (fp32)",
        ]
    )
