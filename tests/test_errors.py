"""Golden error tests: every tests/errors/*.cnn is a bad spec, its .err what `specc check` prints.

The first comment lines of a spec say what it shows; two may steer the run:
`# check: --strict` passes flags, `# exit: 0` expects a clean exit (warnings only).
Regenerate the goldens after changing a message, then read every diff:

    SPECC_REGOLD=1 pytest tests/test_errors.py
"""

from __future__ import annotations

import os
import re
from itertools import pairwise
from pathlib import Path

import pytest
from click.testing import CliRunner

import specc
from specc.cli import main
from specc.errors import EXIT_BAD_SPEC, SpeccError

ERRORS = Path(__file__).parent / "errors"
CASES = sorted(ERRORS.glob("*.cnn"))
REGOLD = os.environ.get("SPECC_REGOLD") == "1"


def directive(spec: Path, name: str) -> str | None:
    match = re.search(rf"^# {name}: (.*)$", spec.read_text(encoding="utf-8"), re.MULTILINE)
    return match.group(1).strip() if match else None


def run_check(spec: Path, monkeypatch) -> tuple[int, str, str]:
    monkeypatch.chdir(spec.parent)  # the messages name the file as the user typed it
    flags = (directive(spec, "check") or "").split()
    result = CliRunner().invoke(main, ["check", *flags, spec.name])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a bug, not a user mistake: show its traceback
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("spec", CASES, ids=[c.stem for c in CASES])
def test_golden_error(spec: Path, monkeypatch):
    code, _, stderr = run_check(spec, monkeypatch)
    golden = spec.with_suffix(".err")
    if REGOLD:
        golden.write_text(stderr, encoding="utf-8")
    assert "Traceback" not in stderr
    assert code == int(directive(spec, "exit") or EXIT_BAD_SPEC)
    assert stderr == golden.read_text(encoding="utf-8")


def test_every_diagnostic_in_a_golden_has_a_hint():
    """Issue 2: each error and warning says how to fix it, not only what is wrong."""
    head = re.compile(r"^\S.*?: (error|warning): ", re.MULTILINE)
    missing = []
    for golden in sorted(ERRORS.glob("*.err")):
        text = golden.read_text(encoding="utf-8")
        starts = [m.start() for m in head.finditer(text)] + [len(text)]
        for start, end in pairwise(starts):
            if "\n  hint: " not in text[start:end]:
                missing.append(f"{golden.name}: {text[start:end].splitlines()[0]}")
    assert not missing, "\n".join(missing)


def test_every_golden_has_a_spec():
    orphans = [e.name for e in ERRORS.glob("*.err") if not e.with_suffix(".cnn").exists()]
    assert not orphans


@pytest.mark.parametrize("spec", CASES, ids=[c.stem for c in CASES])
def test_error_points_into_the_file(spec: Path, monkeypatch):
    """Every `file:line:col:` names a real line, with the caret inside (or just after) its text."""
    _, _, stderr = run_check(spec, monkeypatch)
    lines = spec.read_text(encoding="utf-8").splitlines()
    for line, col in re.findall(rf"^{re.escape(spec.name)}:(\d+):(\d+): ", stderr, re.MULTILINE):
        assert 1 <= int(line) <= len(lines)
        assert 1 <= int(col) <= len(lines[int(line) - 1]) + 1


def test_a_missing_spec_file_is_a_bad_input_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["check", "nowhere.cnn"])
    assert result.exit_code == EXIT_BAD_SPEC
    assert "no such spec file: nowhere.cnn" in result.stderr


# ---- several stages: what one run reports, and what it holds back -----------------------------


def messages(text: str) -> list[str]:
    """`line: message` of every error that loading and checking `text` reports."""
    with pytest.raises(SpeccError) as caught:
        specc.loads(text, "t.cnn").check()
    return [f"{d.span.line if d.span else 0}: {d.message}" for d in caught.value.diagnostics]


def test_an_expansion_error_and_an_independent_shape_error_are_both_reported():
    text = "network t\ninput 3x8x8\nconv K=4 F=3\nfc 10\ncnov K=8\n"
    assert messages(text) == ["4: fc needs a flat input, got 4×6×6", "5: unknown layer 'cnov'"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # no input to check against
        ("network t\nconv K=4 F=3\nfc 10\n", ["0: the spec has no `input` line"]),
        ("network t\ninput 3x0x8\nfc 10\n", ["2: input 3x0x8 is not a shape specc can take"]),
        # which of two definitions is meant is unknown, so what a call gives is too
        (
            "network t\ninput 3x8x8\nblock b(K) {\n    conv K=K F=3\n}\nblock b(K) {\n    conv K=K F=3 P=1\n}\nb(8)\nfc 10\n",
            ["6: a block named 'b' is defined twice"],
        ),
        # words after a block call's parentheses may have been meant as its arguments
        (
            "network t\ninput 3x8x8\nblock b(K, S=1) {\n    conv K=K F=3 S=S\n}\nb(8) S=2\nfc 10\n",
            ["6: a block call takes its arguments inside the parentheses"],
        ),
        # a repeat count that is not one
        ("network t\ninput 3x8x8\nconv K=4 F=3 x0\nfc 10\n", ["3: a repeat count must be between 1 and 100,000, got 0"]),
    ],
)
def test_no_shape_error_follows_from_an_expansion_error(text: str, expected: list[str]):
    assert messages(text) == expected


def test_a_brace_that_closes_nothing_holds_back_argument_errors():
    """The '}' on line 4 ends the block early, so line 5 reads as a top-level layer where K is no number.

    The user's mistake is a brace: only the syntax error is reported, not `K` on line 5.
    """
    text = "network t\ninput 3x8x8\nblock b(K) {\n}\n    conv K=K F=3\n}\nconv K 8 F=3\n"
    assert messages(text) == ["6: '}' closes a group that was never opened"]
