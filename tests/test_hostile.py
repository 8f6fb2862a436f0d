"""Hostile input: absurd numbers, huge lines, markup and escapes in names, damaged files: a clear error, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import specc
from specc import errors
from specc import report as views
from specc.cli import main
from specc.errors import SpeccError

ROOT = Path(__file__).resolve().parent.parent

HUGE = "9" * 4000  # near the 4,300 digits Python's int() accepts; a longer line is refused whole (below)

# Every place the parser reads an integer, and arithmetic that squares a number at every level.
HUGE_NUMBERS = {
    "layer argument": f"input 1x8x8\nconv K={HUGE} F=3\n",
    "negative argument": f"input 1x8x8\nconv K=-{HUGE} F=3\n",
    "positional": f"input 4\nfc {HUGE}\n",
    "input size": f"input 1x{HUGE}\nflatten\nfc 2\n",
    "plain input": f"input {HUGE}\nfc 2\n",
    "sizes": f"input 1x8x8\nconv K=2 F={HUGE}x3\n",
    "repeat": f"input 1x8x8\nrelu x{HUGE}\n",
    "block argument": f"input 1x8x8\nblock b(K) {{\n conv K=K F=3\n}}\nb({HUGE})\n",
    "default": f"input 1x8x8\nblock b(K={HUGE}) {{\n conv K=K F=3\n}}\nb()\n",
    "train setting": f"input 1x8x8\ntrain {{ epochs={HUGE} }}\nrelu\n",
    "nested squares": "input 1x8x8\n"
    + "".join(f"block b{i}(K) {{\n b{i + 1}(K*K)\n}}\n" for i in range(30))
    + "block b30(K) {\n conv K=K F=3\n}\n"
    + f"b0({'9' * 99})\n",
}


@pytest.mark.parametrize("text", HUGE_NUMBERS.values(), ids=HUGE_NUMBERS.keys())
def test_a_huge_number_is_an_error_at_its_place(text):
    with pytest.raises(SpeccError) as caught:
        specc.loads(text, "net.cnn").check()
    rendered = caught.value.render()
    assert "too large" in rendered and "net.cnn:" in rendered
    assert len(rendered) < 3000  # the number is named by its length, not printed whole


def test_a_long_number_within_reach_still_gets_the_fields_range():
    with pytest.raises(SpeccError, match="conv K is too large: 9999999999…"):
        specc.loads(f"input 1x8x8\nconv K={'9' * 90} F=3\n", "net.cnn").check()


def test_a_number_past_pythons_int_limit_is_refused_with_its_line():
    with pytest.raises(SpeccError, match="line 2 is 5,011 characters long"):
        specc.loads(f"input 1x8x8\nconv K={'9' * 5000} F=3\n", "net.cnn").check()


# ---- denial of service: output and time stay bounded -------------------------------------------


def _rendered_error(text: str) -> str:
    with pytest.raises(SpeccError) as caught:
        specc.loads(text, "net.cnn").check()
    return caught.value.render()


def test_a_line_of_hundreds_of_bad_arguments_prints_a_page():
    rendered = _rendered_error("input 1x8x8\n" + "relu " * 800 + "\n")
    assert rendered.count("error: relu does not take 'relu' here") == errors.MAX_SHOWN
    assert "more errors not shown" in rendered
    assert len(rendered) < 20 * 600  # each excerpt is a window of the line, not the line


def test_a_megabyte_line_is_refused_before_parsing():
    rendered = _rendered_error("input 1x8x8\n" + "relu " * 200_000 + "\n")
    assert "line 2 is 1,000,000 characters long" in rendered and len(rendered) < 1000


def test_diagnostics_beyond_the_cap_are_counted():
    diags = [errors.Diagnostic(f"problem {i}") for i in range(25)] + [errors.Diagnostic("w", severity="warning")]
    text = errors.render_all(diags, None)
    assert "problem 19" in text and "problem 20" not in text
    assert text.endswith("... and 5 more errors and 1 more warning not shown (fix the first ones and check again)")


def test_an_excerpt_of_a_long_line_keeps_the_caret_under_the_culprit():
    line = "relu " * 100 + "conv K=2 F=3 bogus=1"
    source = errors.Source(f"input 1x8x8\n{line}\n", "net.cnn")
    column = line.index("bogus") + 1
    diag = errors.Diagnostic("bad", errors.Span(2, column, 2, column + 5))
    _, shown, caret = errors.render(diag, source).splitlines()
    assert shown.startswith("   2 | …") and len(shown) < 140
    assert shown[caret.index("^") :].startswith("bogus")


def test_a_hundred_thousand_layers_draw_a_bounded_table():
    report = specc.loads("input 1x8x8\nrelu x100000\n", "net.cnn").check()
    text = views.table(report, None, 200).plain
    assert text.count("\n") < views.MAX_ROWS + 10
    assert f"{100_001 - views.MAX_ROWS:,} more rows not drawn" in text


# ---- narrow terminals: no figure or line of code is cut ------------------------------------------

ZOO = sorted((ROOT / "specs").rglob("*.cnn"))


@pytest.mark.parametrize("columns", ["80", "120", "200"])
@pytest.mark.parametrize("spec", ZOO, ids=[str(p.relative_to(ROOT / "specs")) for p in ZOO])
def test_every_figure_of_the_zoo_appears_whole_at_any_width(spec, columns):
    runner = CliRunner(env={"COLUMNS": columns})
    figures = json.loads(runner.invoke(main, ["check", "--json", str(spec)]).stdout)
    result = runner.invoke(main, ["check", str(spec)])
    assert result.exit_code == 0 and "…" not in result.stdout
    cells = {cell.strip() for line in result.stdout.splitlines() for cell in line.split("│")}
    for layer in figures["layers"] + figures["groups"]:
        assert {f"{layer['params']:,}", f"{layer['macs']:,}", "×".join(map(str, layer["output_shape"] or []))} <= cells, layer["name"]
    assert f"params      {figures['total_params']:,} " in result.stdout
    if columns != "200":  # the table fits, or says what it left out; a line that still runs on is never cut
        table_lines = [line for line in result.stdout.splitlines() if line.startswith(("┃", "│"))]
        assert all(len(line) <= int(columns) for line in table_lines) or "left out to fit" in result.stdout


@pytest.mark.parametrize("columns", ["80", "200"])
@pytest.mark.parametrize("spec", ZOO, ids=[str(p.relative_to(ROOT / "specs")) for p in ZOO])
def test_compile_print_is_the_file_byte_for_byte(spec, columns, tmp_path):
    runner = CliRunner(env={"COLUMNS": columns})
    model = tmp_path / "model.py"
    assert runner.invoke(main, ["compile", str(spec), "-o", str(model)]).exit_code == 0
    printed = runner.invoke(main, ["compile", str(spec), "--print"])
    assert printed.exit_code == 0 and printed.stdout_bytes == model.read_bytes()


# ---- a damaged run directory --------------------------------------------------------------------


def test_a_config_json_of_the_wrong_types_exits_2_as_bad_json_does(tmp_path):
    pytest.importorskip("torch")  # it trains
    from .helpers import invoke, make_npz, write_spec

    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data", n_train=48, n_test=12)
    run = tmp_path / "run"
    assert invoke("train", str(spec), "--data", str(data), "--epochs", "1", "--batch-size", "8", "--out", str(run)).exit_code == 0
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(config | {"epochs": "many"}))
    result = invoke("train", "--resume", str(run))
    assert result.exit_code == 2 and "config.json is not a valid configuration" in result.output and "Traceback" not in result.output


def test_a_message_quoting_a_huge_token_is_clipped():
    rendered = _rendered_error("input 1x8x8\ninit " + "9" * 4000 + "\n")
    assert all(len(line) <= errors.MAX_LINE for line in rendered.splitlines()) and "characters more)" in rendered


def test_the_end_of_training_prints_markup_in_names_as_text(tmp_path):
    pytest.importorskip("torch")  # it trains
    import numpy as np

    from .helpers import invoke, make_npz, write_spec

    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data", n_train=48, n_test=12)
    for split in ("train", "test"):
        with np.load(data / f"{split}.npz") as arrays:
            np.savez(data / f"{split}.npz", x=arrays["x"], y=arrays["y"], classes=np.array(["[dog]", "[/x]", "cat"]))
    run = tmp_path / "[/x]"
    result = invoke("train", str(spec), "--data", str(data), "--epochs", "1", "--batch-size", "8", "--out", str(run))
    assert result.exit_code == 0, result.output
    assert "0 [dog]" in result.output and "1 [/x]" in result.output and f"run directory: {run}" in result.output
