"""Checkpoints: safetensors round trips of weights, optimiser, scheduler and RNG state."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from specc.errors import InputFileError
from specc.runners import checkpoint
from specc.runners.checkpoint import (
    load,
    optimizer_state_from_tensors,
    optimizer_state_to_tensors,
    restore_rng_state,
    rng_state_to_tensors,
    save_atomic,
    scheduler_state_from_tensors,
    scheduler_state_to_tensors,
)


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    x, y = torch.randn(4, 1, 4, 4, generator=generator), torch.randint(0, 3, (4,), generator=generator)
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()


def assert_same(a, b) -> None:
    """Equal nested states: same types all the way down, tensors equal in dtype, shape and value."""
    assert type(a) is type(b)
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    else:
        assert a == b


def test_model_weights_round_trip_with_metadata(tmp_path):
    weights = tiny_model().state_dict()
    weights["transposed"] = torch.arange(6.0).reshape(2, 3).t()  # not contiguous
    save_atomic(tmp_path / "last.safetensors", weights, {"spec": "input 1x4x4"})
    loaded, meta = load(tmp_path / "last.safetensors")
    assert_same(dict(sorted(weights.items())), dict(sorted(loaded.items())))
    assert meta == {"spec": "input 1x4x4"}
    assert os.listdir(tmp_path) == ["last.safetensors"]


def test_tensors_sharing_memory_can_be_saved(tmp_path):
    shared = torch.ones(3)
    save_atomic(tmp_path / "tied.safetensors", {"a": shared, "b": shared})
    assert sorted(load(tmp_path / "tied.safetensors")[0]) == ["a", "b"]


def test_adam_state_round_trips_and_resumes_identically(tmp_path):
    model = tiny_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.99))
    for seed in (1, 2):
        train_step(model, optimizer, seed)
    tensors, meta = optimizer_state_to_tensors(optimizer.state_dict())
    save_atomic(tmp_path / "last.safetensors", model.state_dict())
    save_atomic(tmp_path / "last.state.safetensors", tensors, {**meta, "epoch": "2"})

    resumed = tiny_model()
    resumed.load_state_dict(load(tmp_path / "last.safetensors")[0])
    resumed_optimizer = torch.optim.Adam(resumed.parameters(), lr=0.5)
    state_tensors, state_meta = load(tmp_path / "last.state.safetensors")
    resumed_optimizer.load_state_dict(optimizer_state_from_tensors(state_tensors, state_meta))
    assert state_meta["epoch"] == "2"
    assert_same(optimizer.state_dict(), resumed_optimizer.state_dict())
    assert isinstance(resumed_optimizer.state_dict()["state"][0]["step"], torch.Tensor)

    train_step(model, optimizer, 3)
    train_step(resumed, resumed_optimizer, 3)
    assert_same(model.state_dict(), resumed.state_dict())


def test_scheduler_state_round_trips_beside_the_optimizer(tmp_path):
    optimizer = torch.optim.SGD(tiny_model().parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1.0, total_steps=10)
    optimizer.step()
    scheduler.step()
    opt_tensors, opt_meta = optimizer_state_to_tensors(optimizer.state_dict())
    sched_tensors, sched_meta = scheduler_state_to_tensors(scheduler.state_dict())
    save_atomic(tmp_path / "s.safetensors", {**opt_tensors, **sched_tensors}, {**opt_meta, **sched_meta})
    tensors, meta = load(tmp_path / "s.safetensors")
    assert_same(scheduler_state_from_tensors(tensors, meta), scheduler.state_dict())
    assert_same(optimizer_state_from_tensors(tensors, meta), optimizer.state_dict())


def test_nested_values_keep_their_python_types():
    state = {"a": (1, 2.5, None, True), 3: [float("inf"), "x", {"t": torch.tensor(7, dtype=torch.int32)}]}
    tensors, meta = optimizer_state_to_tensors(state)
    assert list(tensors) == ["optimizer/3/2/t"]
    assert_same(optimizer_state_from_tensors(tensors, meta), state)


def test_state_that_cannot_be_stored_is_refused():
    with pytest.raises(TypeError, match="cannot store object optimizer/f"):
        optimizer_state_to_tensors({"f": object()})


def test_rng_state_round_trips_through_a_file(tmp_path):
    random.gauss(0, 1)  # leaves a cached Gaussian in Python's generator
    save_atomic(tmp_path / "rng.safetensors", rng_state_to_tensors())
    first = (torch.rand(3), random.random(), random.gauss(0, 1), np.random.rand(), np.random.randn())
    restore_rng_state(load(tmp_path / "rng.safetensors")[0])
    again = (torch.rand(3), random.random(), random.gauss(0, 1), np.random.rand(), np.random.randn())
    assert torch.equal(first[0], again[0]) and first[1:] == again[1:]


def test_crash_while_writing_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "last.safetensors"
    save_atomic(path, {"w": torch.zeros(2)})

    def crash(src, dst):
        raise OSError("killed mid-write")

    monkeypatch.setattr(checkpoint.os, "replace", crash)
    with pytest.raises(OSError, match="killed"):
        save_atomic(path, {"w": torch.ones(2)})
    assert torch.equal(load(path)[0]["w"], torch.zeros(2))
    assert os.listdir(tmp_path) == ["last.safetensors"]  # no temporary file left behind


def test_truncated_file_is_an_input_file_error(tmp_path):
    path = tmp_path / "best.safetensors"
    save_atomic(path, {"w": torch.randn(100)})
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(InputFileError, match="best.safetensors is not a complete safetensors file"):
        load(path)


def test_pickle_and_missing_files_are_input_file_errors(tmp_path):
    torch.save({"w": torch.zeros(2)}, tmp_path / "model.pt")
    with pytest.raises(InputFileError) as e:
        load(tmp_path / "model.pt")
    assert "never pickle" in e.value.diagnostics[0].hint
    with pytest.raises(InputFileError, match="nowhere.safetensors: no such checkpoint file"):
        load(tmp_path / "nowhere.safetensors")


def test_state_file_without_the_asked_state(tmp_path):
    with pytest.raises(InputFileError, match="the checkpoint has no optimizer state"):
        optimizer_state_from_tensors({}, {"epoch": "1"})
    tensors, meta = optimizer_state_to_tensors({"step": torch.tensor(1.0)})
    with pytest.raises(InputFileError, match="optimizer state is damaged"):
        optimizer_state_from_tensors({}, meta)
    with pytest.raises(InputFileError, match="no random number generator state"):
        restore_rng_state(tensors)


# --- a run killed at any moment of its writes resumes to the files of an unbroken run -------------


class Killed(BaseException):
    """A kill: no handler of specc's sees it, only `finally` blocks run."""


def kill_at_rename(monkeypatch, run: Path, kill_after: int | None) -> list[str]:
    """Count the files renamed into `run` (every file a run writes is written beside it and renamed);
    with `kill_after`, the process 'dies' after that many renames, with the next file written, not renamed."""
    real, renamed = os.replace, []

    def replace(src, dst):
        if Path(dst).parent == run:
            if len(renamed) == kill_after:
                raise Killed
            renamed.append(Path(dst).name)
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    return renamed


def run_files(run: Path) -> dict:
    """What a finished run holds, timings left out: weights, their epochs, test.json, metrics, the state's epoch."""
    from specc.runners.rundir import STATE_FILE

    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    files = {
        "metrics": [{k: v for k, v in row.items() if k not in ("seconds", "images_per_s")} for row in rows],
        "test": json.loads((run / "test.json").read_text()),
        "state epoch": load(run / STATE_FILE)[1]["specc.epoch"],
        "curves": (run / "curves.png").stat().st_size > 0,
        "temporary files": sorted(p.name for p in run.iterdir() if ".tmp" in p.name),
    }
    for name in ("last", "best"):
        tensors, meta = load(run / f"{name}.safetensors")
        files[name] = {k: v.tolist() for k, v in tensors.items()}, meta["specc.epoch"]
    return files


def cheap_curves(history, path, title, *rest) -> None:
    """write_curves without matplotlib, written beside and renamed as it is: the same place in the sequence."""
    tmp = path.with_name(path.name + ".tmp-curves")
    tmp.write_text(json.dumps([title, history]))
    os.replace(tmp, path)


@pytest.mark.parametrize("best_epoch, val_fraction", [(1, None), (2, 0.0)])
def test_a_kill_after_any_write_of_a_run_resumes_to_the_unbroken_run(tmp_path, monkeypatch, best_epoch, val_fraction):
    from specc.runners import rundir
    from specc.runners import train as trainer

    from .helpers import make_npz, quick, write_spec

    monkeypatch.setattr(rundir, "write_curves", cheap_curves)
    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data", n_train=40, n_test=12)
    # A tiny validation split ties at accuracy 1 from epoch 1 on, so the best stays at epoch 1; without
    # one the score is the falling training loss, so the best is the last epoch: both kinds of stale best.
    settings = quick(data, epochs=2, lr=0.05, batch_size=8, val_fraction=val_fraction)
    whole = tmp_path / "whole"
    with monkeypatch.context() as m:
        writes = kill_at_rename(m, whole, None)
        trainer.train(spec, settings, out=whole)
    want = run_files(whole)
    assert want["best"][1] == str(best_epoch) and want["test"]["epoch"] == best_epoch
    assert writes.count(rundir.STATE_FILE) == 2 and writes[-1] == "test.json" and "best.safetensors" in writes

    for kill_after in range(len(writes)):
        run = tmp_path / f"killed-after-{kill_after}"
        with monkeypatch.context() as m:
            kill_at_rename(m, run, kill_after)
            with pytest.raises(Killed):
                trainer.train(spec, settings, out=run)
        if (run / rundir.STATE_FILE).exists():
            trainer.train(None, resume=run)
        else:  # no epoch was committed: the same command again, in the folder specc made
            trainer.train(spec, settings, out=run)
        assert run_files(run) == want, f"killed with {writes[:kill_after]} renamed, {writes[kill_after]} written beside"


# The process dies outright (os._exit: no handler, no `finally`) at the named rename into the run.
HARD_KILL = """
import os, sys
from pathlib import Path
real, seen = os.replace, []
target, when = sys.argv.pop(1), sys.argv.pop(1)
def replace(src, dst):
    seen.append(Path(dst).name)
    if seen.count(target) == 2 and seen[-1] == target and when == "before":
        os._exit(137)
    real(src, dst)
    if seen.count(target) == 2 and seen[-1] == target:
        os._exit(137)
os.replace = replace
from specc.cli import run
sys.argv = ["specc", *sys.argv[1:]]
run()
"""


@pytest.mark.parametrize("when", ["after", "before"])
def test_a_hard_kill_at_the_last_epochs_state_is_finished_by_resume(tmp_path, when):
    """The kill of issue 10: right after (or just before) the final epoch's state is renamed."""
    import subprocess
    import sys

    from specc.runners.rundir import STATE_FILE

    from .helpers import invoke, make_npz, write_spec

    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data", n_train=40, n_test=12)
    run = tmp_path / "run"
    flags = ["--data", str(data), "--epochs", "2", "--batch-size", "8", "--precision", "fp32", "--val-fraction", "0", "--out", str(run)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run([sys.executable, "-c", HARD_KILL, STATE_FILE, when, "train", str(spec), *flags], env=env, capture_output=True)
    assert done.returncode == 137, done.stderr
    assert load(run / "last.safetensors")[1]["specc.epoch"] == "1" and not (run / "test.json").exists()
    assert bool(list(run.glob("*.tmp-*"))) == (when == "before")

    result = invoke("train", "--resume", str(run))
    assert result.exit_code == 0, result.output
    assert ("epoch 2/2" in result.output) == (when == "before")  # a committed epoch is never trained again
    state, state_meta = load(run / STATE_FILE)
    last, last_meta = load(run / "last.safetensors")
    assert state_meta["specc.epoch"] == last_meta["specc.epoch"] == "2"
    for name, tensor in last.items():
        assert torch.equal(tensor, state[f"model/{name}"]), name
    best_epoch = int(state_meta["specc.best_epoch"])
    assert best_epoch == 2  # without validation the falling training loss makes every epoch the best so far
    assert load(run / "best.safetensors")[1]["specc.epoch"] == "2" and json.loads((run / "test.json").read_text())["epoch"] == 2
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2 and not list(run.glob("*.tmp-*"))


def test_a_run_without_validation_keeps_a_best_even_when_its_loss_stays_above_one(tmp_path):
    from specc.runners.train import train

    from .helpers import make_npz, quick, write_spec

    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data", n_train=24, n_test=6)
    result = train(spec, quick(data, epochs=1, lr=1e-9, val_fraction=0.0), out=tmp_path / "run")
    assert result.history[0]["train_loss"] > 1  # three classes: about ln 3 while the weights barely move
    assert result.best_epoch == 1 and load(tmp_path / "run" / "best.safetensors")[1]["specc.epoch"] == "1"
    assert json.loads((tmp_path / "run" / "test.json").read_text())["epoch"] == 1
