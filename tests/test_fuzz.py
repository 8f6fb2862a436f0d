"""Mutated specs never crash specc: parse, expand and check raise SpeccError or nothing.

Hypothesis takes the real specs in specs/ and damages them the ways people and
editors do: lines deleted, duplicated or swapped, tokens replaced, characters,
numbers and braces inserted, numbers set to 0, -1 or something huge. Any other
exception is a bug in specc, shown with the text that caused it. Derandomised,
so a run is repeatable and a failure reproduces.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

import specc
from specc import report as views
from specc.errors import SpeccError

SPECS = {p.name: p.read_text(encoding="utf-8") for p in sorted((Path(__file__).parent.parent / "specs").rglob("*.cnn"))}
TOKEN = re.compile(r"[A-Za-z_]\w*|\d+(?:\.\d+)?|\S")
WORDS = ["conv", "pool", "fc", "relu", "residual", "concat", "seq", "block", "input", "network", "init", "train", "freeze", "x2", "x0"]
WORDS += ["K", "F", "S", "P", "same", "valid", "full", "global", "max", "avg", "shortcut", "project", "auto", "bias", "false", "groups"]
PIECES = [
    "{",
    "}",
    "(",
    ")",
    "=",
    ",",
    ":",
    "-",
    "*",
    "/",
    "+",
    "#",
    "\\",
    '"',
    "x",
    "\n",
    "\t",
    " ",
    "é",
    "×",
    ";",
    "\r",
    "\x00",
    "\x0c",
    "\u2028",
]
NUMBERS = ["0", "-1", "1", "2", "3", "7", "1e9", "99999999999999999999", "2.5", "1e999", "0.0", "1" + "0" * 400]

settings.register_profile("fuzz", max_examples=600, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


@st.composite
def mutation(draw, text: str) -> str:
    """One to four edits of `text`, each at a drawn place."""
    lines = text.split("\n")
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "duplicate", "swap", "token", "insert", "number", "join"]))
        i = draw(st.integers(0, len(lines) - 1))
        if kind == "delete" and len(lines) > 1:
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "join" and i + 1 < len(lines):
            lines[i : i + 2] = [lines[i] + " " + lines[i + 1]]
        elif kind == "token":
            lines[i] = _replace_token(draw, lines[i])
        elif kind == "number":
            lines[i] = re.sub(r"\d+", lambda _: draw(st.sampled_from(NUMBERS)), lines[i], count=draw(st.integers(1, 3)))
        else:
            at = draw(st.integers(0, len(lines[i])))
            piece = draw(st.sampled_from(PIECES + NUMBERS + WORDS) | st.text(max_size=3))
            lines[i] = lines[i][:at] + piece + lines[i][at:]
    return "\n".join(lines)


def _replace_token(draw, line: str) -> str:
    tokens = list(TOKEN.finditer(line))
    if not tokens:
        return line
    token = draw(st.sampled_from(tokens))
    new = draw(st.sampled_from(WORDS + NUMBERS + PIECES))
    return line[: token.start()] + new + line[token.end() :]


def check_text(text: str, strict: bool = False) -> None:
    try:
        report = specc.loads(text, "fuzz.cnn").check(strict=strict)
    except SpeccError as err:
        rendered = err.render()  # drawing the message must not crash either
        assert "error" in rendered
        lines = text.split("\n")
        assert all(diag.hint for diag in err.diagnostics), err.diagnostics  # every error says how to fix it
        for diag in err.diagnostics:  # and every caret lands in the text, or just after a line's end
            for span in [diag.span, *(where for _, where in diag.notes)]:
                if span is not None:
                    assert 1 <= span.line <= len(lines) and 1 <= span.column <= len(lines[span.line - 1]) + 1, (diag, span)
        return
    json.dumps(views.to_json(report))  # nor drawing the figures
    Console(file=io.StringIO(), width=200).print(views.table(report), views.totals(report))


@pytest.mark.parametrize("name", list(SPECS))
@settings(settings.get_profile("fuzz"), max_examples=50)
@given(data=st.data())
def test_mutated_specs_raise_only_spec_errors(name: str, data):
    text = data.draw(mutation(SPECS[name]), label="spec")
    check_text(text, strict=data.draw(st.booleans(), label="strict"))


@settings(settings.get_profile("fuzz"), max_examples=150)
@given(text=st.lists(st.sampled_from(PIECES + WORDS + NUMBERS), max_size=40).map("".join))
def test_token_soup_raises_only_spec_errors(text: str):
    check_text("network soup\ninput 3x8x8\n" + text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n",
        "# only a comment",
        "input 3x8x8\nrelu x99999999999\n",  # a repeat that would never end
        "input 3x8x8\nblock b() {\n  b()\n  b()\n}\nb()\n",  # a block that calls itself
        "input 3x8x8\nblock a() {\n  c()\n}\nblock c() {\n  a()\n}\na()\n",  # two blocks calling each other
        "input 3x8x8\nconv K=" + "(" * 3000 + "1" + ")" * 3000 + " F=1\n",  # nesting deeper than Python's stack
        "input 3x8x8\nconv K=" + "-" * 3000 + "1 F=1\n",
        "input 3x8x8\n" + "seq {\n" * 400 + "relu\n" + "}\n" * 400,
        "input 3x8x8\nconv K=1" + "0" * 400 + "/3 F=1\n",  # a division too large for a float
        "input 3x8x8\ndropout 1e999-1e999\n",  # not a number
        "input 3x" + "9" * 30 + "x9\nconv K=2 F=3 S=1" + "0" * 25 + "\nflatten\nfc 3\n",
        "input 3x8x8\nconv K=8 F=3 groups=" + "9" * 30 + "\n",
        "input 3x8x8\ntrain {\nlr=1/0 lr=2\n}\nrelu\n",
    ],
)
def test_edge_cases_raise_only_spec_errors(text: str):
    check_text(text)
