"""Kill `specc train` at random moments, resume it each time, and count what survives.

A small network trains on synthetic data twice: once unbroken, once killed again and again and
resumed with `specc train --resume` until it finishes. Half of the kills land the moment a
checkpoint file is being written (a `*.tmp-*` file appears in the run directory), the others
at a random time; most are SIGKILL (a power cut, the OOM killer), some SIGINT (Ctrl-C).
After every kill the run directory is inspected: every safetensors file must open, config.json
and every metrics.jsonl line must parse, and last.safetensors must belong to the epoch the
resume state records. At the end the killed run must equal the unbroken one bit for bit.

Prints the kills (during writes, elsewhere), the resumes that worked or failed, the corrupt
files found, and whether the final weights and test.json equal the unbroken run's.

    python bench/kill_soak.py [--kills 20] [--epochs 6] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SPEC = """network soak
input 1x16x16
conv K=16 F=3 P=1
batchnorm
relu
pool max F=2
conv K=32 F=3 P=1
relu
flatten
fc 512
relu
fc 4
softmax
"""
# The 1M-parameter fc makes each checkpoint file 4 MB, so that a kill can land while one is written.
# One thread each, so that the unbroken and the resumed runs compute in the same order.
ENV = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def make_data(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 1200)
    x = rng.normal(size=(1200, 1, 16, 16)).astype(np.float32)
    x[np.arange(1200), 0, labels * 4, :] += 2.0  # a learnable stripe per class
    np.savez(folder / "train.npz", x=x[:1000], y=labels[:1000])
    np.savez(folder / "test.npz", x=x[1000:], y=labels[1000:])
    return folder


def train_command(spec: Path, data: Path, run: Path, epochs: int, resume: bool) -> list[str]:
    specc = [sys.executable, "-m", "specc"]
    if resume:  # the run directory remembers every setting; a resume that named one again would be refused
        return [*specc, "train", "--resume", str(run)]
    settings = ["--epochs", str(epochs), "--batch-size", "32", "--device", "cpu", "--precision", "fp32"]
    return [*specc, "train", str(spec), "--data", str(data), "--out", str(run), *settings]


def inspect(run: Path) -> list[str]:
    """What is damaged in the run directory: files that do not open or parse."""
    from safetensors import safe_open

    problems = []
    for file in sorted(run.glob("*.safetensors")):
        try:
            with safe_open(file, framework="pt") as f:
                list(f.keys())
        except Exception as err:  # noqa: BLE001 - any failure to open is what we count
            problems.append(f"{file.name}: {err}")
    for file in [run / "config.json", run / "test.json"]:
        if file.exists():
            try:
                json.loads(file.read_text())
            except ValueError as err:
                problems.append(f"{file.name}: {err}")
    if (run / "metrics.jsonl").exists():
        for n, line in enumerate((run / "metrics.jsonl").read_text().splitlines(), 1):
            try:
                json.loads(line)
            except ValueError:
                problems.append(f"metrics.jsonl line {n} does not parse")
    return problems


def mismatches(run: Path) -> list[str]:
    """Files that open but disagree with the resume state: a resume must repair them."""
    from safetensors import safe_open

    def meta(name: str) -> dict:
        try:
            with safe_open(run / name, framework="pt") as f:
                return f.metadata() or {}
        except Exception:  # noqa: BLE001 - missing or damaged: inspect() reports the damage
            return {}

    state, last, best = meta("last.state.safetensors"), meta("last.safetensors"), meta("best.safetensors")
    out = []
    if state and last and state.get("specc.epoch") != last.get("specc.epoch"):
        out.append(f"last.safetensors holds epoch {last.get('specc.epoch')}, the resume state epoch {state.get('specc.epoch')}")
    if state and best and state.get("specc.best_epoch") != best.get("specc.epoch"):
        out.append(f"best.safetensors holds epoch {best.get('specc.epoch')}, the resume state's best is {state.get('specc.best_epoch')}")
    return out


def kill_once(cmd: list[str], run: Path, rnd: random.Random, budget: float) -> tuple[str, int | None]:
    """Start `cmd`, kill it at a chosen moment; (where the kill landed, exit code if it ended first)."""
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    during_write = rnd.random() < 0.5
    deadline = time.monotonic() + (budget * 3 if during_write else rnd.uniform(2.5, 0.8 * budget))
    where = "elsewhere"
    while proc.poll() is None and time.monotonic() < deadline:
        if during_write and any(".tmp-" in p.name for p in run.glob("*")):
            where = "during a write"
            break
        time.sleep(0.001 if during_write else 0.05)
    if proc.poll() is not None:
        return "after it ended", proc.returncode
    proc.send_signal(signal.SIGINT if rnd.random() < 0.2 else signal.SIGKILL)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return where, None


def final_state(run: Path) -> tuple[dict, dict]:
    from safetensors.torch import load_file

    weights = {name: load_file(run / name) for name in ("last.safetensors", "best.safetensors")}
    test = json.loads((run / "test.json").read_text())
    return weights, {k: v for k, v in test.items() if "time" not in k and "second" not in k}


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[f].keys() == b[f].keys() and all(bool((a[f][t] == b[f][t]).all()) for t in a[f]) for f in a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    opts = parser.parse_args()
    rnd = random.Random(opts.seed)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec = tmp / "soak.cnn"
        spec.write_text(SPEC)
        data = make_data(tmp)

        began = time.monotonic()
        command = train_command(spec, data, tmp / "unbroken", opts.epochs, False)
        unbroken = subprocess.run(command, env=ENV, cwd=ROOT, capture_output=True, text=True)
        if unbroken.returncode != 0:
            sys.exit(f"the unbroken run failed:\n{unbroken.stderr}")
        budget = time.monotonic() - began
        print(f"unbroken run: {opts.epochs} epochs in {budget:.1f} s; now {opts.kills} kills", flush=True)

        run, kills, resumes, failures, corrupt, stale = tmp / "killed", {"during a write": 0, "elsewhere": 0}, 0, [], [], []
        started = False
        while sum(kills.values()) < opts.kills:
            resume = started and (run / "last.state.safetensors").exists()
            last_command = train_command(spec, data, run, opts.epochs, resume)
            where, code = kill_once(last_command, run, rnd, budget)
            started = True
            resumes += resume
            if code is not None:  # it finished (or failed) before the kill: start over from scratch
                if code != 0:
                    sys.exit(f"specc train exited {code} before the kill came; fix that first:\n{' '.join(last_command)}")
                if code == 0:
                    print("  the run finished before the kill came; training it again from the start", flush=True)
                    subprocess.run(["rm", "-rf", str(run)])
                    started = False
                continue
            kills[where] += 1
            corrupt += [f"after kill {sum(kills.values())}: {p}" for p in inspect(run)]
            stale += [f"after kill {sum(kills.values())}: {p}" for p in mismatches(run)]

        finish = subprocess.run(train_command(spec, data, run, opts.epochs, True), env=ENV, cwd=ROOT, capture_output=True, text=True)
        resumes += 1
        if finish.returncode != 0:
            failures.append(f"final resume exit {finish.returncode}: {finish.stderr.strip().splitlines()[-1:]}")
        corrupt += [f"at the end: {p}" for p in inspect(run)]

        print(f"kills      {sum(kills.values())} ({kills['during a write']} during a checkpoint write, {kills['elsewhere']} elsewhere)")
        print(f"resumes    {resumes - len(failures)} worked, {len(failures)} failed")
        print(f"corrupt    {len(corrupt)} files that did not open or parse")
        print(f"stale      {len(stale)} times last or best disagreed with the resume state after a kill (the next resume must repair it)")
        for line in failures + corrupt + stale:
            print(f"  {line}")
        same = False
        if finish.returncode == 0:
            (w1, t1), (w2, t2) = final_state(tmp / "unbroken"), final_state(run)
            same = same_weights(w1, w2) and t1 == t2
            print(f"identical  {'yes' if same else 'NO'}: last and best weights and test.json against the unbroken run")
        sys.exit(0 if same and not failures and not corrupt else 1)


if __name__ == "__main__":
    main()
