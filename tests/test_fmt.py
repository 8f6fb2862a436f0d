"""`specc fmt` and `specc check --json`'s diagnostics, in process and without torch.

The formatter is tested against the specs themselves: each is already in the canonical layout, so
a badly laid out copy of it must format back to the very file, with the same check report.
"""

from __future__ import annotations

import json
import random
import re
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from specc import fmt, loads
from specc.cli import main
from specc.errors import SpeccError
from specc.report import to_json

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted([*ROOT.glob("specs/**/*.cnn"), *ROOT.glob("examples/**/*.cnn")])


def cli(*args: str, stdin: str | None = None):
    return CliRunner().invoke(main, [str(a) for a in args], input=stdin)


def test_every_spec_and_example_is_formatted():
    result = cli("fmt", "--check", *SPECS)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"0 files would be reformatted, {len(SPECS)} already formatted" in result.stderr


# ---- badly laid out copies of every spec --------------------------------------------------


def _mess_line(line: str, rng: random.Random) -> str:
    """The same tokens with other whitespace: indentation, gaps, spaces around = , : * / ( )."""
    code, hash_, comment = line.partition("#")
    if '"' in line:  # a string may hold any of the characters below: leave its line alone
        return line
    code = rng.choice(["", " ", "\t", "  \t ", "       "]) + code.lstrip()
    code = re.sub(r"=", lambda _: rng.choice([" = ", "= ", " =", "\t=\t", "="]), code)
    code = re.sub(r",\s*", lambda _: rng.choice([" , ", ",", ",\t", " ,  "]), code)
    code = re.sub(r"^(\s*\w+):\s*", lambda m: m.group(1) + rng.choice([" : ", ":", "\t:  "]), code)
    code = re.sub(r"[*/]", lambda m: rng.choice([" ", "\t", ""]) + m.group(0) + rng.choice([" ", "  ", ""]), code)
    code = re.sub(r"(?<=[\w)]) (?=\S)", lambda _: rng.choice([" ", "  ", "\t", " \t "]), code)
    code = re.sub(r"\((?=\w)", lambda _: rng.choice(["(", "( ", "(\t"]), code)
    code = re.sub(r"(?<=\w)\)", lambda _: rng.choice([")", " )", "\t)"]), code)
    if hash_:
        code = code.rstrip() + rng.choice([" ", "\t", "          "]) if code.strip() else code
    return code + hash_ + comment + rng.choice(["", " ", "\t ", "   "])


def mess(text: str, seed: int, blank_lines: bool) -> str:
    rng = random.Random(seed)
    out = [_mess_line(line, rng) for line in text.split("\n")]
    if blank_lines:  # more blank lines (blanks on them) where the layout allows none or one: no line moves for good
        out = [extra for line in out for extra in ([line, " \t", ""] if _no_blank_after(line) else [line])]
        out = ["", "  "] + out + ["", "\t", ""]
    return "\n".join(out)


def _no_blank_after(line: str) -> bool:
    """A blank line, or one that opens a group: the formatter keeps one blank line after the first, none after the second."""
    return not line.strip() or line.split("#")[0].rstrip().endswith("{")


@pytest.fixture(scope="module", params=SPECS, ids=lambda p: p.stem)
def spec(request) -> tuple[Path, str, dict]:
    text = request.param.read_text(encoding="utf-8")
    return request.param, text, to_json(loads(text).check())


def test_a_messy_copy_keeps_its_report_and_formats_back(spec):
    path, text, report = spec
    messy = mess(text, seed=len(text), blank_lines=False)
    assert messy != text
    # the mess changed no token: the same network, layer for layer and line for line (warnings' columns move)
    assert to_json(loads(messy).check()) | {"diagnostics": None} == report | {"diagnostics": None}
    formatted = fmt.format_text(messy, str(path))
    assert formatted == text
    assert to_json(loads(formatted).check()) == report
    assert fmt.format_text(formatted) == formatted


def test_extra_blank_lines_and_tabs_format_back(spec):
    path, text, report = spec
    formatted = fmt.format_text(mess(text, seed=7, blank_lines=True), str(path))
    assert formatted == text
    assert to_json(loads(formatted).check()) == report


# ---- layout rules, one case each: (input, canonical) -------------------------------------

LAYOUT = {
    "spacing": ("stem :conv K = 8 F=3 P = ( 3 - 1 ) / 2\n", "stem: conv K=8 F=3 P=(3-1)/2\n"),
    "minus: negation or subtraction, as parsed": (
        "leakyrelu  -0.1\npool max - 1\nconv K=4*-2\n",
        "leakyrelu -0.1\npool max-1\nconv K=4*-2\n",
    ),
    "a parenthesis after a name is not a call": ("relu ( 3 )\nb( 4 , S=2 )  x2\n", "relu (3)\nb(4, S=2) x2\n"),
    "a glued repeat stays a name, for the checker to report": ("b( 4 )x2\nb(4)x N\n", "b(4)x2\nb(4)x N\n"),
    "block header": ("block b ( K , S = 1 ) {\n\trelu\n}\n", "block b(K, S=1) {\n    relu\n}\n"),
    "groups and repeats": ("residual{\nseq {\n  relu\n  }\n}  x 2\n", "residual {\n    seq {\n        relu\n    }\n} x 2\n"),
    "train on one line": ("train {  epochs = 3   batch=8 }\n", "train { epochs=3 batch=8 }\n"),
    "continuation": ("conv K=8 \\\n        F=3\n", "conv K=8 \\\n    F=3\n"),
    "blank lines": ("\n\nrelu\n\n\n\nseq {\n\n  relu\n\n}\n\n\n", "relu\n\nseq {\n    relu\n}\n"),
    "comments stay": (
        "# head  \nrelu # a\nseq {\n  conv K=4 F=3 #  b\n  # inside, before the brace\n}\n# end\n",
        "# head\nrelu              # a\nseq {\n    conv K=4 F=3  #  b\n    # inside, before the brace\n}\n# end\n",
    ),
    "comments line up within a paragraph only": (
        "relu # a\nconv K=4 F=3 # b\n\nrelu # c\n# a comment line ends a paragraph\nflatten # d\n",
        "relu          # a\nconv K=4 F=3  # b\n\nrelu  # c\n# a comment line ends a paragraph\nflatten  # d\n",
    ),
    "a long line does not push the comments out": (
        f"relu # a\nfc {'1+' * 60}1 # b\nconv K=4 F=3 # c\n",
        f"relu          # a\nfc {'1+' * 60}1  # b\nconv K=4 F=3  # c\n",
    ),
    "no final newline": ("relu", "relu\n"),
    "crlf stays": ("relu\r\nseq {\r\nrelu # x\r\n}\r\n", "relu\r\nseq {\r\n    relu  # x\r\n}\r\n"),
    "byte-order mark stays": ("\ufeff relu\n", "\ufeffrelu\n"),
    "empty": ("\n\n", ""),
}


@pytest.mark.parametrize("name", LAYOUT)
def test_layout(name):
    text, canonical = LAYOUT[name]
    assert fmt.format_text(text) == canonical
    assert fmt.format_text(canonical) == canonical


def test_a_layout_that_changes_a_token_is_refused(monkeypatch):
    """The safety net: were a rule to glue `relu (3)` into a call, the result is refused."""
    monkeypatch.setattr(fmt, "_spaced", lambda *args: False)
    with pytest.raises(SpeccError) as raised:
        fmt.format_text("relu (3)\n", "net.cnn")
    assert raised.value.exit_code == 1
    assert "would change the spec's tokens" in raised.value.diagnostics[0].message


# ---- the command ---------------------------------------------------------------------------

MESSY = "network  t\ninput 1x8x8\nconv K = 4 F=3\n\n\n\nrelu   # why\n"
CANONICAL = "network t\ninput 1x8x8\nconv K=4 F=3\n\nrelu  # why\n"


def test_fmt_rewrites_in_place_keeping_permissions(tmp_path):
    spec = tmp_path / "net.cnn"
    spec.write_text(MESSY)
    spec.chmod(0o640)
    result = cli("fmt", tmp_path)  # a folder: every .cnn under it
    assert result.exit_code == 0, result.output
    assert spec.read_text() == CANONICAL
    assert stat.S_IMODE(spec.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["net.cnn"]  # no temporary file left behind
    assert "1 file reformatted, 0 already formatted" in result.stderr


def test_check_shows_a_diff_changes_nothing_and_exits_1(tmp_path):
    spec = tmp_path / "net.cnn"
    spec.write_text(MESSY)
    result = cli("fmt", "--check", spec)
    assert result.exit_code == 1
    assert spec.read_text() == MESSY
    diff = result.stdout.splitlines()
    assert diff[:2] == [f"--- {spec}\t(original)", f"+++ {spec}\t(formatted)"]
    assert "-conv K = 4 F=3" in diff and "+conv K=4 F=3" in diff and "+relu  # why" in diff
    assert f"would reformat {spec}" in result.stderr


def test_stdin_to_stdout():
    result = cli("fmt", "-", stdin=MESSY)
    assert result.exit_code == 0
    assert result.stdout == CANONICAL
    assert cli("fmt", "--check", "-", stdin=CANONICAL).exit_code == 0
    assert cli("fmt", "--check", "-", stdin=MESSY).exit_code == 1


def test_a_syntax_error_is_refused_and_the_file_untouched(tmp_path):
    bad, good = tmp_path / "bad.cnn", tmp_path / "good.cnn"
    bad.write_text("network  t\ninput 1x8x8\nconv K= F=3\n")
    good.write_text(MESSY)
    result = cli("fmt", bad, good)
    assert result.exit_code == 2
    assert bad.read_text() == "network  t\ninput 1x8x8\nconv K= F=3\n"
    assert good.read_text() == CANONICAL  # the other files are still formatted
    assert f"{bad}:3:6: error: a value is missing after 'K='" in result.stderr
    assert "1 refused" in result.stderr


def test_a_missing_path_is_a_bad_input():
    result = cli("fmt", "no/such/net.cnn")
    assert result.exit_code == 2
    assert "no such spec file" in result.stderr


# ---- check --json ---------------------------------------------------------------------------


def test_check_json_lists_a_bad_specs_diagnostics():
    spec = ROOT / "tests/errors/block_defined_twice.cnn"
    result = cli("check", "--json", spec)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"{spec}: 1 error (details as JSON on stdout)"
    [diagnostic] = json.loads(result.stdout)["diagnostics"]
    assert diagnostic == {
        "file": str(spec),
        "line": 9,
        "column": 7,
        "end_line": 9,
        "end_column": 12,
        "severity": "error",
        "message": "a block named 'basic' is defined twice",
        "hint": "rename one of them",
        "notes": [
            {"message": "the first 'basic' is defined here", "file": str(spec), "line": 5, "column": 7, "end_line": 5, "end_column": 12}
        ],
    }


def test_check_json_carries_a_good_specs_warnings_as_diagnostics():
    spec = ROOT / "tests/errors/nonint_warning.cnn"
    result = cli("check", "--json", spec)
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    [warning] = data["diagnostics"]
    assert (warning["severity"], warning["line"], warning["column"], warning["end_column"]) == ("warning", 6, 1, 5)
    assert warning["message"] == data["warnings"][0]


def test_check_json_of_a_missing_file():
    result = cli("check", "--json", "no/such.cnn")
    assert result.exit_code == 2
    [diagnostic] = json.loads(result.stdout)["diagnostics"]
    assert diagnostic["line"] is None and diagnostic["message"] == "no such spec file: no/such.cnn"
