"""What a user of `specc train` sees: flag spellings shared by the verbs, --quiet, completion, Ctrl-C on a terminal."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from specc.cli import main
from specc.cli.train import RichReporter
from specc.runners.plots import curves_title
from specc.runners.train import train

from .helpers import invoke, make_npz, quick, write_spec


def test_the_output_and_batch_flags_have_both_spellings_on_every_verb(tmp_path):
    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data", n_train=48, n_test=12)
    helps = {verb: invoke(verb, "--help").output for verb in ("train", "compile", "export", "bench")}
    assert all(re.search(r"-o, (--out, --output|--output, --out)", helps[verb]) for verb in ("train", "compile", "export"))
    assert "--batch-size, --batch" in helps["train"] and "--batch-size, --batch" in helps["bench"]
    flags = ["--data", str(data), "--epochs", "1", "--precision", "fp32"]
    result = invoke("train", str(spec), *flags, "--batch", "8", "-o", str(tmp_path / "run"))
    assert result.exit_code == 0 and "of 8" in result.output and (tmp_path / "run" / "test.json").is_file(), result.output
    assert invoke("compile", str(spec), "--out", str(tmp_path / "model.py")).exit_code == 0 and (tmp_path / "model.py").is_file()


def test_quiet_training_says_only_the_result_and_where_it_is(tmp_path):
    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data", n_train=48, n_test=12)
    result = invoke("train", str(spec), "--data", str(data), "--epochs", "2", "-q", "--out", str(tmp_path / "run"), "--precision", "fp32")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 2 and lines[0].startswith("test accuracy ") and lines[1] == f"run directory: {tmp_path / 'run'}"
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2  # quiet on screen, not in the files


def complete(words: str) -> list[str]:
    env = {"_SPECC_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)}
    return CliRunner().invoke(main, [], env=env, prog_name="specc").output.splitlines()


def test_choice_flags_complete_in_the_shell():
    assert complete("specc train --optimizer ad") == ["plain,adagrad", "plain,adam", "plain,adamw"]
    assert complete("specc train --schedule c") == ["plain,constant", "plain,cosine"]
    assert complete("specc train --loss b") == ["plain,bce"]
    assert complete("specc train --precision f") == ["plain,fp16", "plain,fp32"]
    assert complete("specc eval --device c") == ["plain,cpu", "plain,cuda"]
    assert complete("specc train --augment flip,c") == ["plain,flip,crop"]


def test_the_curves_title_does_not_repeat_the_network():
    assert curves_title("fashion", Path("runs/fashion")) == "fashion"
    assert curves_title("fashion", Path("runs/fashion-ddp")) == "fashion (fashion-ddp)"


def screen(raw: bytes, width: int) -> list[str]:
    """What a terminal of `width` columns shows after `raw`: printing with wrap, \\r, \\n, cursor up, erase line."""
    rows: list[dict[int, str]] = [{}]
    row = col = 0
    text = raw.decode(errors="replace")
    i = 0
    while i < len(text):
        escape = re.match(r"\x1b\[([?0-9;]*)([A-Za-z])", text[i:])
        if escape:
            args, command = escape.groups()
            if command == "A":
                row = max(0, row - int(args or 1))
            elif command == "K" and args == "2":
                rows[row] = {}
            i += escape.end()
            continue
        ch = text[i]
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row += 1
        elif ch.isprintable():
            if col >= width:  # the wrap a terminal makes when the next character does not fit
                row, col = row + 1, 0
            rows.extend({} for _ in range(row + 1 - len(rows)))
            rows[row][col] = ch
            col += 1
        rows.extend({} for _ in range(row + 1 - len(rows)))
        i += 1
    return ["".join(r.get(c, " ") for c in range(max(r, default=-1) + 1)).rstrip() for r in rows]


@pytest.mark.skipif(sys.platform != "linux", reason="drives a pseudo-terminal")
def test_ctrl_c_on_a_narrow_terminal_leaves_no_half_drawn_progress_bar(tmp_path):
    """The terminal echoes ^C after the bar; the bar must leave room for it, or the echo wraps and rich clears the wrong line."""
    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data", n_train=6000, n_test=12)
    command = [sys.executable, "-m", "specc", "train", str(spec), "--data", str(data), "--batch-size", "8", "--precision", "fp32"]
    pid, fd = pty.fork()
    if pid == 0:  # the child: specc on the terminal's far side
        os.environ["COLUMNS"] = "60"
        os.execv(command[0], [*command, "--out", str(tmp_path / "run")])
    out, typed, deadline = b"", False, time.monotonic() + 120
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child has gone and closed its side
                break
            if not chunk:
                break
            out += chunk
        if not typed and out.count(b"img/s") >= 3:
            os.write(fd, b"\x03")  # Ctrl-C typed at the terminal: the line discipline sends SIGINT and echoes ^C
            typed = True
    _, status = os.waitpid(pid, 0)
    assert typed and os.waitstatus_to_exitcode(status) == 130, out[-2000:]
    shown = screen(out, 60)
    assert "error: training interrupted" in "\n".join(shown)
    assert not any("━" in line for line in shown), "\n".join(shown[-6:])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["network"] == "tiny"


def test_the_progress_bar_reporter_ends_with_the_test_result(tmp_path, capsys):
    """The bar's own task id once took the name of the training task, and the test summary failed on it."""
    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data", n_train=48, n_test=12)
    train(spec, quick(data, epochs=1), out=tmp_path / "run", reporter=RichReporter())
    out = capsys.readouterr().out
    assert "test accuracy" in out and "(12 samples, weights of epoch 1)" in out
