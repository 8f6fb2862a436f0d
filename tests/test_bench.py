"""specc bench: per-layer figures for every layer, whole-network figures for both engines, drawn as tables.

Times are never compared with a number: machines here are shared and noisy.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

import specc
from specc.cli import main
from specc.runners import bench

from .helpers import TINY_NAMED

RESIDUAL = """network residual_small
input 3x16x16
conv K=8 F=3 P=1
relu
down: residual shortcut=auto {
    conv K=16 F=3 S=2 P=1 bias=false
    batchnorm
    relu
}
pool avg global
flatten
fc 4
"""


@pytest.fixture(autouse=True)
def short_timings(monkeypatch):
    monkeypatch.setattr(bench, "MIN_SECONDS", 0.02)


def test_measure_times_every_layer_both_ways_and_both_engines():
    net = specc.loads(RESIDUAL, "residual_small.cnn")
    figures = bench.measure(net, batch=4, iters=2)

    leaves = [name for name, m in net.to_torch().named_modules() if not any(m.children())]
    assert [row.name for row in figures.layers] == leaves
    assert all(row.forward_ms > 0 and row.backward_ms > 0 for row in figures.layers)
    assert {row.kind for row in figures.layers} >= {"conv", "batchnorm", "relu", "pool", "fc"}
    assert figures.forward_ms >= sum(row.forward_ms for row in figures.layers) * 0.99
    for speed, batch in ((figures.latency, 1), (figures.throughput, 4)):
        assert speed.batch == batch and speed.torch_ms > 0 and speed.onnxruntime_ms > 0
        assert speed.speedup == pytest.approx(speed.torch_ms / speed.onnxruntime_ms)

    console = Console(record=True, width=200)
    for table in bench.tables(figures):
        console.print(table)
    text = console.export_text()
    assert "down.shortcut1.0" in text and "backward ms" in text and "onnxruntime speed-up" in text


def test_bench_prints_its_tables(tmp_path: Path):
    spec = tmp_path / "tiny.cnn"
    spec.write_text(TINY_NAMED)
    result = CliRunner().invoke(main, ["bench", str(spec), "--iters", "1", "--batch", "2"])
    assert result.exit_code == 0, result.output
    for expected in ("features.0", "head", "total", "latency, batch 1", "throughput, batch 2", "torch eager", "onnxruntime"):
        assert expected in result.stdout


def test_busy_machine_is_flagged():
    figures = bench.Bench("n", 2, 1, 2, [], 1.0, 1.0, bench.Speed(1, 2.0, 1.0), bench.Speed(2, 2.0, 1.0), load=3.5, cores=2)
    assert figures.busy
    assert "not reliable" in str(bench.tables(figures)[-1])


def test_both_engines_run_on_the_pinned_threads(monkeypatch):
    import torch

    before = torch.get_num_threads()
    sessions = []

    def session(path, threads):
        made = real_session(path, threads)
        sessions.append((made.get_session_options().intra_op_num_threads, torch.get_num_threads()))
        return made

    real_session = bench._session
    monkeypatch.setattr(bench, "_session", session)
    figures = bench.measure(specc.loads(TINY_NAMED, "tiny.cnn"), batch=2, iters=1, threads=1)
    assert figures.threads == 1 and sessions == [(1, 1)]  # onnxruntime's threads, and torch's while it was timed
    assert torch.get_num_threads() == before


def test_a_busy_machine_gets_fewer_threads_and_a_warning_before_measuring(tmp_path: Path, monkeypatch):
    assert bench.default_threads(None, 4) >= 1 and bench.default_threads(7.6, 8) == 1 and bench.default_threads(0.2, 1) == 1
    monkeypatch.setattr(bench, "machine_load", lambda: (5.0, 2))
    spec = tmp_path / "tiny.cnn"
    spec.write_text(TINY_NAMED)
    result = CliRunner().invoke(main, ["bench", str(spec), "--iters", "1", "--batch", "2"])
    assert result.exit_code == 0, result.output
    assert result.stderr.index("warning: the load average is 5.00 on 2 cores") < result.stderr.index("timing tiny")
    assert "torch eager, 1 thread" in result.stdout and "onnxruntime, 1 thread" in result.stdout
    assert "measured under a load average of 5.00" in result.stdout
