"""Views of a check report: the rich table and the JSON. Computing happens in check.py."""

from __future__ import annotations

from typing import Any

from .check import Report, Row
from .shapes import shape_text


def to_json(report: Report) -> dict[str, Any]:
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
    }


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


_COLUMNS = (  # (header, justify); only the formula wraps on a narrow terminal
    ("name", "left"),
    ("kind", "left"),
    ("line", "right"),
    ("output", "right"),
    ("(W − F + 2P)/S + 1", "left"),
    ("params", "right"),
    ("MACs", "right"),
    ("RF", "right"),
)
_FORMULA = 4


def table(report: Report, depth: int | None = None):
    """The check table as a rich renderable; groups deeper than `depth` fold into their row."""
    from rich.cells import cell_len
    from rich.table import Table

    rows = [row for row in report.rows if depth is None or row.depth <= depth]
    cells = [_cells(row) for row in rows]
    t = Table(title=f"{report.network}: input {shape_text(report.input_shape)}", title_justify="left", header_style="bold")
    for i, (header, justify) in enumerate(_COLUMNS):
        # A width given saves rich measuring every cell, half the time of drawing a ResNet-50's 196 rows.
        width = None if i == _FORMULA else max(cell_len(text) for text in [header, *(c[i] for c in cells)])
        t.add_column(header, justify=justify, no_wrap=i != _FORMULA, width=width)
    for row, texts in zip(rows, cells, strict=True):
        t.add_row(*texts, style="bold" if row.is_group else None)
    return t


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
