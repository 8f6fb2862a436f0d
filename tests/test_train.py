"""Training: the loss falls, the run directory holds what it promises, resume is exact, failures are clean.

Every test makes its own small data (3 classes of 8x8 images, a bright
square in a different place per class) and trains a tiny spec for a few
epochs on the CPU; the whole file takes seconds. One slow test trains on the
real Fashion-MNIST files.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from specc.errors import SpeccError
from specc.runners import rundir
from specc.runners import train as trainer
from specc.runners.checkpoint import load as load_safetensors
from specc.runners.interrupts import interrupts_held
from specc.runners.train import Reporter, train

from .helpers import REAL_FASHION_MNIST, TINY, assert_same_weights, invoke, make_npz, quick, weights, write_spec

# --- learning ------------------------------------------------------------------------


def test_a_few_epochs_lower_the_loss_and_beat_chance(tmp_path):
    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data")
    result = train(spec, quick(data, epochs=3), out=tmp_path / "run")
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < losses[0] * 0.7
    assert result.test is not None and result.test.accuracy > 0.8 and result.test.count == 60


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"])
def test_every_optimizer_trains(tmp_path, optimizer):
    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data", n_train=96, n_test=12)
    # four epochs: two are too few for the loss to fall through the noise of augmentation on every device
    flags = quick(data, epochs=4, optimizer=optimizer, lr=None, schedule="cosine", augment="flip,crop,translate", label_smoothing=0.1)
    history = train(spec, flags, out=tmp_path / "run").history
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_the_run_directory_holds_what_the_contract_says(tmp_path):
    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data")
    run = tmp_path / "run"
    train(spec, quick(data), out=run)
    names = {
        "spec.cnn",
        "config.json",
        "metrics.jsonl",
        "last.safetensors",
        "best.safetensors",
        rundir.STATE_FILE,
        "curves.png",
        "test.json",
    }
    assert names <= {p.name for p in run.iterdir()}
    assert not [p for p in run.iterdir() if ".tmp" in p.name]
    assert (run / "spec.cnn").read_text() == TINY
    config = json.loads((run / "config.json").read_text())
    assert config["network"] == "tiny" and config["classes"] == ["top", "middle", "bottom"] and config["input_shape"] == [1, 8, 8]
    assert config["device"] == "cpu" and config["seed"] == 0 and config["specc_version"] and len(config["normalisation"]["mean"]) == 1
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]
    assert set(rows[0]) >= {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_s"}
    with safe_open(run / "best.safetensors", framework="pt") as f:
        meta, names = f.metadata(), set(f.keys())
    assert names == {
        "conv1.weight",
        "conv1.bias",
        "bn1.weight",
        "bn1.bias",
        "bn1.running_mean",
        "bn1.running_var",
        "bn1.num_batches_tracked",
        "fc1.weight",
        "fc1.bias",
    }
    assert meta["specc.network"] == "tiny" and json.loads(meta["specc.classes"]) == ["top", "middle", "bottom"]
    assert json.loads(meta["specc.input_shape"]) == [1, 8, 8] and len(json.loads(meta["specc.std"])) == 1
    assert meta["specc.epoch"] in ("1", "2") and json.loads((run / "test.json").read_text())["epoch"] == int(meta["specc.epoch"])


def test_the_trained_weights_load_into_the_compiled_spec(tmp_path):
    """The trailing softmax is trained around, not removed: the spec's own module takes the weights."""
    import specc

    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data")
    train(spec, quick(data, epochs=1), out=tmp_path / "run")
    model = specc.load(spec).to_torch().eval()
    model.load_state_dict(weights(tmp_path / "run" / "best.safetensors"))
    probabilities = model(torch.rand(4, 1, 8, 8))
    assert torch.allclose(probabilities.sum(1), torch.ones(4))


def test_flags_override_the_spec_train_section(tmp_path):
    spec = write_spec(tmp_path, TINY.replace("input 1x8x8\n", "input 1x8x8\ntrain {\n  epochs=3 optimizer=sgd lr=0.5\n}\n"))
    data = make_npz(tmp_path / "data", n_train=48, n_test=12)
    train(spec, {"data": str(data), "epochs": 1, "precision": "fp32"}, out=tmp_path / "run")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["epochs"], config["optimizer"], config["lr"]) == (1, "sgd", 0.5)


# --- resume --------------------------------------------------------------------------


class KillDuring(Reporter):
    """Raises KeyboardInterrupt part-way through an epoch, as Ctrl-C or `kill` would."""

    def __init__(self, epoch: int):
        self.kill_epoch, self.epoch = epoch, 0

    def epoch_start(self, epoch, epochs, images):
        self.epoch = epoch

    def progress(self, images, loss, images_per_s):
        if self.epoch == self.kill_epoch and images >= 48:
            raise KeyboardInterrupt


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_resume_after_a_kill_gives_the_weights_of_an_unbroken_run(tmp_path, precision):
    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data")
    settings = quick(data, epochs=3, augment="flip,translate", schedule="onecycle", precision=precision)
    train(spec, settings, out=tmp_path / "whole")
    with pytest.raises(SpeccError, match="interrupted; epoch 1 is saved") as stopped:
        train(spec, settings, out=tmp_path / "broken", reporter=KillDuring(epoch=2))
    assert stopped.value.exit_code == 130 and "--resume" in stopped.value.diagnostics[0].hint
    assert load_safetensors(tmp_path / "broken" / "last.safetensors")[1]["specc.epoch"] == "1"
    torch.manual_seed(1234)  # the resumed run must not depend on the state it finds
    train(None, resume=tmp_path / "broken")
    for name in ("last.safetensors", "best.safetensors"):
        assert_same_weights(weights(tmp_path / "whole" / name), weights(tmp_path / "broken" / name))
    whole, broken = ((tmp_path / run / "metrics.jsonl").read_text().splitlines() for run in ("whole", "broken"))
    strip = [{k: v for k, v in json.loads(line).items() if k not in ("seconds", "images_per_s")} for line in whole + broken]
    assert strip[:3] == strip[3:]


def test_resume_takes_no_recipe_flags_and_needs_a_run(tmp_path):
    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data", n_train=48, n_test=12)
    train(spec, quick(data, epochs=1), out=tmp_path / "run")
    result = invoke("train", "--resume", str(tmp_path / "run"), "--lr", "0.1")
    assert result.exit_code == 1 and "--resume continues a run as it was configured, so it takes no --lr" in result.output
    result = invoke("train", "--resume", str(tmp_path))
    assert result.exit_code == 2 and "holds no run to resume" in result.output


def test_a_finished_run_resumed_only_reports(tmp_path):
    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data", n_train=48, n_test=12)
    train(spec, quick(data, epochs=1), out=tmp_path / "run")
    result = invoke("train", "--resume", str(tmp_path / "run"))
    assert result.exit_code == 0 and "test accuracy" in result.output and "epoch 1/1" not in result.output


# --- failures ------------------------------------------------------------------------


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data")
    real_step, calls = trainer._Run._step, []

    def step_that_diverges_in_epoch_two(self, xb, yb):
        loss, hits = real_step(self, xb, yb)
        calls.append(1)
        return (loss * float("nan") if len(calls) > self.data.steps + 3 else loss), hits

    monkeypatch.setattr(trainer._Run, "_step", step_that_diverges_in_epoch_two)
    with pytest.raises(SpeccError) as stopped:
        train(spec, quick(data, epochs=3), out=tmp_path / "run")
    message = stopped.value.diagnostics[0].message
    assert "training diverged in epoch 2: the loss became nan at step 4 of 13" in message and "last good checkpoint is in" in message
    assert stopped.value.exit_code == 1
    assert load_safetensors(tmp_path / "run" / "last.safetensors")[1]["specc.epoch"] == "1"
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1


def test_a_ctrl_c_while_an_epoch_is_written_stops_the_run_after_its_files(tmp_path, monkeypatch):
    """The interrupt that aborted CPython in CI: it came while the first epoch's curves imported matplotlib."""
    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data", n_train=48, n_test=12)
    real_curves = rundir.write_curves

    def curves_interrupted(*args):
        os.kill(os.getpid(), signal.SIGINT)
        real_curves(*args)

    monkeypatch.setattr(rundir, "write_curves", curves_interrupted)
    with pytest.raises(SpeccError) as stopped:
        train(spec, quick(data, epochs=3), out=tmp_path / "run")
    assert stopped.value.exit_code == 130 and "training interrupted; epoch 1 is saved" in stopped.value.diagnostics[0].message
    assert (tmp_path / "run" / "curves.png").is_file() and len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1


def test_held_interrupts_reach_the_handler_that_was_there_after_the_block():
    came: list[str] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: came.append("handler"))
    try:
        with interrupts_held():
            os.kill(os.getpid(), signal.SIGTERM)
            came.append("block ran on")
        assert came == ["block ran on", "handler"]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_diverging_learning_rate_is_reported_without_a_traceback(tmp_path):
    spec = write_spec(tmp_path, TINY.replace("batchnorm\n", ""))  # batchnorm would keep the loss finite
    data = make_npz(tmp_path / "data", n_train=96, n_test=12)
    flags = ["--optimizer", "sgd", "--lr", "1e30", "--batch-size", "16", "--out", str(tmp_path / "run")]
    result = invoke("train", str(spec), "--data", str(data), *flags)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert re.search(r"error: training diverged in epoch 1: the loss became (nan|inf) at step \d of 5", result.output)
    assert "no epoch completed, so there is no checkpoint" in result.output and not (tmp_path / "run" / "last.safetensors").exists()


@pytest.mark.slow
@pytest.mark.skipif(not REAL_FASHION_MNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist")
def test_a_fraction_of_an_epoch_on_real_fashion_mnist_is_far_above_chance(tmp_path):
    spec = Path(__file__).parent.parent / "bench" / "fashion_small.cnn"
    result = invoke("train", str(spec), "--limit", "6000", "--epochs", "1", "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    test = json.loads((tmp_path / "run" / "test.json").read_text())
    assert test["accuracy"] > 0.6


def test_kill_then_resume_from_the_command_line(tmp_path):
    """SIGTERM, as `kill` sends, mid-run: exit code 130, a message saying how to resume, and resume finishes the run."""
    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data", n_train=60, n_test=12)
    flags = ["--data", str(data), "--epochs", "12", "--batch-size", "8", "--precision", "fp32"]
    run = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "specc", "train", str(spec), *flags, "--out", str(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (run / "metrics.jsonl").exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    assert "training interrupted; epoch" in err and f"continue with: specc train --resume {run}" in err and "Traceback" not in err
    saved = int(load_safetensors(run / "last.safetensors")[1]["specc.epoch"])
    assert 1 <= saved < 12
    result = invoke("train", "--resume", str(run))
    assert result.exit_code == 0 and f"resuming at epoch {saved + 1}" in result.output and "epoch 12/12" in result.output
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == list(range(1, 13))
