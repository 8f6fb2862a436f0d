"""What many test files share: a tiny spec, small synthetic data, and the CLI invoked in process.

The data is 3 classes of 8x8 images, a bright square in a different place per
class, so that a tiny spec learns it in a few CPU epochs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner

from specc.cli import main
from specc.runners.checkpoint import load as load_safetensors

TINY = """\
network tiny
input 1x8x8
conv K=4 F=3 P=1
batchnorm
relu
pool max F=2
flatten
fc 3
softmax
"""
REAL_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def make_npz(folder: Path, n_train: int = 240, n_test: int = 60, seed: int = 0, dtype=np.uint8) -> Path:
    """train.npz and test.npz: class k has a bright 3x3 square at the k-th of three places, over noise."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", n_train), ("test", n_test)):
        y = np.arange(n) % 3
        x = rng.integers(0, 60, size=(n, 8, 8))
        for k, (r, c) in enumerate(((0, 0), (2, 3), (5, 5))):
            x[y == k, r : r + 3, c : c + 3] += 180
        np.savez(folder / f"{name}.npz", x=x.astype(dtype), y=y, classes=np.array(["top", "middle", "bottom"]))
    return folder


def write_spec(folder: Path, text: str = TINY, name: str = "tiny.cnn") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def quick(data: Path, **settings) -> dict:
    """Flags for a run of a few seconds: a small batch, fp32 so that tests do not depend on the CPU."""
    return {"data": str(data), "epochs": 2, "batch_size": 16, "optimizer": "adam", "lr": 0.01, "precision": "fp32"} | settings


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_safetensors(path)[0]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert torch.equal(a[name], b[name]), name
