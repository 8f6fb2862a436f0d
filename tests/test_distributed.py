"""Several processes through torchrun: DistributedDataParallel over gloo, rank 0 alone writes and prints.

Each test starts two trainer processes on synthetic data; they share this
machine's cores, so each takes some seconds. The trainer writes every
rank's final weights where SPECC_TEST_DUMP_DIR says, for these tests only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from specc.runners.train import epoch_order

from .test_train import assert_same_weights, make_npz, weights, write_spec


def run_in(folder, *command: str, dump=None) -> subprocess.CompletedProcess:
    env = os.environ | ({"SPECC_TEST_DUMP_DIR": str(dump)} if dump else {})
    env.pop("SPECC_DATA", None)
    done = subprocess.run(list(command), cwd=folder, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    return done


def test_two_gloo_processes_through_torchrun_end_with_identical_weights(tmp_path):
    spec, data, dump = write_spec(tmp_path), make_npz(tmp_path / "data"), tmp_path / "dump"
    dump.mkdir()
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    train = ["-m", "specc", "train", str(spec), "--data", str(data), "--epochs", "2", "--batch-size", "16", "--augment", "flip"]
    done = run_in(tmp_path, *torchrun, *train, dump=dump)
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


def test_the_shards_of_an_epoch_are_disjoint_and_equal():
    shards = [epoch_order(100, torch.Generator().manual_seed(7), rank, 3, 33) for rank in range(3)]
    assert all(len(shard) == 33 for shard in shards)
    assert len(set(torch.cat(shards).tolist())) == 99
