"""What the machine refuses (a path that cannot be written, memory that is not there) is an error, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from specc.cli import main
from specc.errors import EXIT_FAILURE

from .helpers import TINY, make_npz


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def write(tmp_path: Path, text: str = TINY) -> str:
    (tmp_path / "net.cnn").write_text(text)
    return str(tmp_path / "net.cnn")


def test_a_file_in_a_missing_folder_is_named_with_the_reason(tmp_path):
    result = run("compile", write(tmp_path), "-o", str(tmp_path / "missing" / "model.py"))
    assert result.exit_code == EXIT_FAILURE and isinstance(result.exception, SystemExit)
    assert f"error: {tmp_path / 'missing' / 'model.py'}: No such file or directory" in result.output
    assert "Traceback" not in result.output


def test_a_run_directory_under_a_file_is_named_with_the_reason(tmp_path):
    (tmp_path / "afile").write_text("")
    data = make_npz(tmp_path / "data", n_train=24, n_test=6)
    result = run("train", write(tmp_path), "--data", str(data), "--epochs", "1", "--out", str(tmp_path / "afile" / "run"))
    assert result.exit_code == EXIT_FAILURE and isinstance(result.exception, SystemExit)
    assert "Not a directory" in result.output and "Traceback" not in result.output


def test_export_never_replaces_a_device(tmp_path):
    # The file is written beside its target and renamed over it, which would turn /dev/null into a
    # regular file. A named pipe stands in for the device, so that a failure here harms nothing.
    pipe = tmp_path / "device.onnx"
    os.mkfifo(pipe)
    result = run("export", write(tmp_path), "-o", str(pipe))
    assert result.exit_code == EXIT_FAILURE and "it is not a regular file" in result.output
    assert pipe.is_fifo()


def test_a_network_too_big_for_memory_is_an_error(tmp_path):
    huge = write(tmp_path, "network huge\ninput 1x8x8\nconv K=10000000000 F=3\nflatten\nfc 3\n")  # 360 GB of weights
    result = run("export", huge, "-o", str(tmp_path / "huge.onnx"))
    assert result.exit_code == EXIT_FAILURE and isinstance(result.exception, SystemExit)
    assert "error: out of memory" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("args", [["check"], ["check", "--json"], ["compile"]], ids=" ".join)
def test_a_reader_that_stops_early_is_not_a_failure(args):
    """`specc check net.cnn | head -1`: the closed pipe exits 0, silently, as it did for compile."""
    spec = Path(__file__).resolve().parent.parent / "specs" / "resnet50.cnn"
    env = dict(os.environ, PYTHONPATH=str(spec.parent.parent), COLUMNS="200")
    with subprocess.Popen([sys.executable, "-m", "specc", *args, str(spec)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as p:
        p.stdout.readline()
        p.stdout.close()  # before the rest is written: resnet50's table is larger than a pipe's buffer
        stderr = p.stderr.read().decode()
        assert p.wait(timeout=60) == 0, stderr
    assert stderr == ""
