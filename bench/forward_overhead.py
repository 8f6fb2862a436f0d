#!/usr/bin/env python3
"""Does compiling cost anything at run time? Compiled ResNet-18 vs a hand-written one.

Times forward + backward of `specc.load("specs/resnet18.cnn").to_torch()` and of
the torchvision-style ResNet-18 in tests/reference_nets.py, alternating them
in every round so that machine noise hits all alike, and prints the median
time of each and their ratio. Target: within 2% (ratio 0.98 to 1.02).

A third model is the compiled one with every ReLU switched to in place (as
torchvision's, and as specc compiled them before issue 9): its ratio to the
compiled one is what in-place ReLUs would buy. specc compiles none, since an
in-place ReLU after a layer that returns its input (dropout at eval) overwrites
a tensor something else still reads; this line shows what that costs.

usage: python bench/forward_overhead.py [--batch 8] [--size 224] [--rounds 10] [--threads 0]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import specc  # noqa: E402
from tests.reference_nets import resnet18  # noqa: E402


def step_seconds(model: torch.nn.Module, batch: torch.Tensor) -> float:
    start = time.perf_counter()
    model(batch).sum().backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    compiled = specc.load(ROOT / "specs" / "resnet18.cnn").to_torch
    models = {"specc": compiled(), "specc in-place": in_place(compiled()), "hand-written": resnet18()}
    batch = torch.randn(args.batch, 3, args.size, args.size)
    for model in models.values():  # warm-up: allocator and oneDNN primitive caches
        step_seconds(model, batch)
    times: dict[str, list[float]] = {name: [] for name in models}
    for i in range(args.rounds):
        order = list(models)[i % len(models) :] + list(models)[: i % len(models)]
        for name in order:
            times[name].append(step_seconds(models[name], batch))

    median = {name: statistics.median(t) for name, t in times.items()}
    print(
        f"ResNet-18 forward+backward, batch {args.batch} at {args.size}x{args.size}, {torch.get_num_threads()} threads, "
        f"median (and fastest) of {args.rounds} alternating rounds"
    )
    for name, seconds in median.items():
        print(f"  {name:<15} {seconds * 1000:8.1f} ms  ({min(times[name]) * 1000:.1f} ms)")
    ratio = median["specc"] / median["hand-written"]
    print(f"ratio specc / hand-written = {ratio:.3f} ({'within' if abs(ratio - 1) <= 0.02 else 'OUTSIDE'} the 2% target)")
    fastest = {name: min(t) for name, t in times.items()}
    print(
        f"ratio specc in-place / specc = {median['specc in-place'] / median['specc']:.3f} "
        f"(fastest rounds: {fastest['specc in-place'] / fastest['specc']:.3f}; below 1: in-place ReLUs are faster)"
    )


def in_place(model: torch.nn.Module) -> torch.nn.Module:
    """`model` with every ReLU working in place: safe in ResNet-18, where each follows a batchnorm or an add."""
    relus = [m for m in model.modules() if isinstance(m, torch.nn.ReLU)]
    assert relus, "the compiled ResNet-18 has no nn.ReLU to switch"
    for relu in relus:
        relu.inplace = True
    return model


if __name__ == "__main__":
    main()
