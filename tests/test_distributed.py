"""Several processes through torchrun: DistributedDataParallel over gloo, rank 0 alone writes and prints.

Each test starts two trainer processes on synthetic data; they share this
machine's cores, so each takes some seconds. To compare the ranks' final
weights, torchrun runs specc through tests/fixtures/train_dumping_weights.py,
which writes each rank's weights into a folder of the test's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from specc.errors import UsageError
from specc.runners.distributed import pick_device
from specc.runners.train import epoch_order, preflight, train

from .helpers import TINY, assert_same_weights, make_npz, quick, weights, write_spec

DUMPING = Path(__file__).parent / "fixtures" / "train_dumping_weights.py"


def run_in(folder, *command: str, expect: int = 0) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("SPECC_DATA", None)
    done = subprocess.run(list(command), cwd=folder, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == expect, f"{done.stdout}\n{done.stderr}"
    return done


def test_two_gloo_processes_through_torchrun_end_with_identical_weights(tmp_path):
    spec, data, dump = write_spec(tmp_path), make_npz(tmp_path / "data"), tmp_path / "dump"
    dump.mkdir()
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    train = [str(DUMPING), str(dump), "train", str(spec), "--data", str(data), "--epochs", "2", "--batch-size", "16", "--augment", "flip"]
    done = run_in(tmp_path, *torchrun, *train)
    rank0, rank1 = weights(dump / "rank0.safetensors"), weights(dump / "rank1.safetensors")
    assert_same_weights(rank0, rank1)
    (run,) = (tmp_path / "runs").iterdir()  # one run directory: rank 1 made none
    assert_same_weights(rank0, weights(run / "last.safetensors"))
    config = json.loads((run / "config.json").read_text())
    # 216 training samples: 108 per process, disjoint, in 6 batches of 16
    assert config["world_size"] == 2 and config["steps_per_epoch"] == 6
    assert done.stdout.count("epoch 1/2") == 1 and done.stdout.count("test accuracy") == 1


def test_the_nproc_shortcut_launches_torchrun_and_only_rank_0_writes(tmp_path):
    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data", n_train=96, n_test=12)
    done = run_in(
        tmp_path,
        sys.executable,
        "-m",
        "specc",
        "train",
        str(spec),
        "--nproc",
        "2",
        "--data",
        str(data),
        "--epochs",
        "1",
        "--batch-size",
        "8",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "runs", "tiny.cnn"]
    (run,) = (tmp_path / "runs").iterdir()
    assert json.loads((run / "config.json").read_text())["world_size"] == 2
    assert done.stdout.count("run directory:") == 2  # the header and the closing line, once each


def test_a_mistake_every_process_would_meet_is_reported_once_before_torchrun_starts(tmp_path):
    data = make_npz(tmp_path / "data", n_train=48, n_test=12)
    spec = write_spec(tmp_path, TINY.replace("1x8x8", "1x28x28"))
    done = run_in(tmp_path, sys.executable, "-m", "specc", "train", str(spec), "--nproc", "2", "--data", str(data), expect=2)
    assert done.stderr.count("error: data has samples of 1×8×8 but the spec's input is 1×28×28") == 1
    assert "Traceback" not in done.stderr and "torch.distributed" not in done.stderr and not (tmp_path / "runs").exists()


def test_a_worker_that_fails_passes_its_exit_code_on_without_torchruns_traceback(tmp_path):
    spec = write_spec(tmp_path, TINY.replace("batchnorm\n", ""))  # batchnorm would keep the loss finite
    data = make_npz(tmp_path / "data", n_train=96, n_test=12)
    flags = ["--optimizer", "sgd", "--lr", "1e30", "--batch-size", "16", "--data", str(data)]
    done = run_in(tmp_path, sys.executable, "-m", "specc", "train", str(spec), "--nproc", "2", *flags, expect=1)
    assert done.stderr.count("error: training diverged in epoch 1") == 1
    assert "Traceback" not in done.stderr and "ChildFailedError" not in done.stderr


def test_a_run_resumes_only_in_as_many_processes_as_it_was_trained_in(tmp_path):
    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data", n_train=48, n_test=12)
    train(spec, quick(data, epochs=1), out=tmp_path / "run")
    with pytest.raises(UsageError, match="was trained in 1 process, not 2") as refused:
        preflight(None, {}, tmp_path / "run", world_size=2)
    assert "resume it in one process" in refused.value.diagnostics[0].hint


def test_the_shards_of_an_epoch_are_disjoint_and_equal():
    shards = [epoch_order(100, torch.Generator().manual_seed(7), rank, 3, 33) for rank in range(3)]
    assert all(len(shard) == 33 for shard in shards)
    assert len(set(torch.cat(shards).tolist())) == 99


def test_auto_takes_the_gpus_only_where_every_process_gets_one_of_its_own(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert pick_device("auto", 0, 1) == torch.device("cuda", 0)
    assert pick_device("auto", 1, 2) == torch.device("cpu")  # NCCL refuses two processes on one GPU
    with pytest.raises(UsageError, match="2 processes on this machine but 1 GPU; each process needs a GPU of its own"):
        pick_device("cuda", 1, 2)


def test_ctrl_c_stops_every_process_and_the_run_resumes_in_as_many(tmp_path):
    """SIGINT to the whole process group, as a terminal sends it: 130, rank 0's resume hint, no torchrun traceback."""
    spec, data, run = write_spec(tmp_path), make_npz(tmp_path / "data", n_train=96, n_test=12), tmp_path / "run"
    flags = ["--data", str(data), "--epochs", "30", "--batch-size", "8", "--out", str(run)]
    command = [sys.executable, "-m", "specc", "train", str(spec), "--nproc", "2", *flags]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (run / "metrics.jsonl").exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, out + err
    assert err.count("training interrupted; epoch") == 1 and f"--resume {run}" in err
    assert "Traceback" not in err and "SignalException" not in err
    done = run_in(tmp_path, sys.executable, "-m", "specc", "train", "--resume", str(run), "--nproc", "2")
    assert "epoch 30/30" in done.stdout
