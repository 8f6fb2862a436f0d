#!/usr/bin/env python3
"""Training speed of `specc train` against the hand-written yardstick, measured in one run.

Both train the yardstick's network (bench/fashion_small.cnn, 119,722
parameters) for one epoch of Fashion-MNIST's 60,000 training images with
Adam, lr 1e-3, batch 128: the yardstick through ../shared/bench/train_ref.py
(a DataLoader over tensors, fp32), specc through its CLI twice, with its
default precision (bf16 on CPUs that compute it natively) and in fp32. Each
reports images/s of its training loop; this prints them and the ratios.
Machines here are shared and noisy: compare the ratio, not the figures
across runs, and run it twice before believing a change.

usage: python bench/train_speed.py [--data DIR] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
YARDSTICK = REPO.parent / "shared" / "bench" / "train_ref.py"
SPEC = REPO / "bench" / "fashion_small.cnn"


def yardstick(data: str | None, epochs: int) -> float:
    command = [sys.executable, str(YARDSTICK), "--epochs", str(epochs)] + (["--data", data] if data else [])
    output = _run(command)
    found = re.search(r"images_per_s=([\d.]+)", output)
    if not found:
        sys.exit(f"the yardstick printed no images_per_s:\n{output}")
    return float(found.group(1))


def specc(data: str | None, epochs: int, precision: str) -> tuple[float, str]:
    """images/s of specc's training loop, and the precision it trained in."""
    with tempfile.TemporaryDirectory() as out:
        # --val-fraction 0: the same 60,000 training images as the yardstick
        command = [sys.executable, "-m", "specc", "train", str(SPEC), "--epochs", str(epochs), "--val-fraction", "0", "--out", out]
        _run(command + ["--precision", precision] + (["--data", data] if data else []))
        rows = [json.loads(line) for line in Path(out, "metrics.jsonl").read_text().splitlines()]
        used = json.loads(Path(out, "config.json").read_text())["precision"]
    return rows[-1]["images_per_s"], used


def _run(command: list[str]) -> str:
    print("$", " ".join(command), flush=True)
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    print(done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "", flush=True)
    if done.returncode != 0:
        sys.exit(f"failed with exit code {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="folder of the Fashion-MNIST IDX files (default: where both look)")
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    if not YARDSTICK.is_file():
        sys.exit(f"the yardstick is not at {YARDSTICK}")
    load = os.getloadavg()[0]
    reference = yardstick(args.data, args.epochs)
    # specc as a user gets it (bf16 where the CPU computes it natively), and in the yardstick's fp32
    auto, auto_precision = specc(args.data, args.epochs, "auto")
    fp32, _ = specc(args.data, args.epochs, "fp32")
    print(f"yardstick (train_ref.py, fp32):   {reference:8,.0f} images/s")
    print(f"specc train, --precision auto:    {auto:8,.0f} images/s  ({auto_precision})   ratio {auto / reference:.2f}x")
    print(f"specc train, --precision fp32:    {fp32:8,.0f} images/s  (fp32)   ratio {fp32 / reference:.2f}x")
    print(f"load average before: {load:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
