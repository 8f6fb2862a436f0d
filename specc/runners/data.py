"""Real data sets as tensors: where the data is, and its training, validation and test splits.

`load_splits` finds the data (`find_data_dir`), reads whichever of the three
layouts it holds (IDX files, image folders or `.npz` arrays: layouts.py),
checks that its samples have the spec's input shape, and holds a validation
split out of the training data. Every problem with the data is raised as an
`InputFileError` that names the file at fault.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch

from specc.errors import InputFileError, UsageError
from specc.runners.layouts import LAYOUTS_HINT, Dataset, is_fashion_mnist, read
from specc.shapes import shape_text

__all__ = ["LAYOUTS_HINT", "Dataset", "Splits", "check_sample_shape", "find_data_dir", "is_fashion_mnist", "load_splits", "normalisation"]

# Where Debian's package `dataset-fashion-mnist` puts its IDX files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


@dataclass
class Splits:
    train: Dataset
    val: Dataset
    test: Dataset | None


def find_data_dir(data: str | None) -> Path:
    """The data the user asked for: `data`, else $SPECC_DATA, else the installed Fashion-MNIST."""
    for given, origin in ((data, "--data"), (os.environ.get("SPECC_DATA"), "SPECC_DATA")):
        if given:
            return _given_data_path(given, origin)
    if FASHION_MNIST_DIR.is_dir():
        return FASHION_MNIST_DIR
    installed = _dpkg_data_dir()
    if installed is not None:
        return installed
    raise UsageError(
        "no data set given and Fashion-MNIST is not installed",
        hint="install it with `apt-get update && apt-get install -y dataset-fashion-mnist`, or pass --data DIR, or set SPECC_DATA=DIR",
    )


def _given_data_path(given: str, origin: str) -> Path:
    """`given` as a path that exists and is a folder or a file; `origin` says where the user gave it."""
    try:
        path = Path(given).expanduser()
    except RuntimeError:  # `~name` where this machine has no user `name`
        home = given.split("/", 1)[0]
        raise InputFileError(
            f"{origin} names {given}, but this machine has no home folder for {home}",
            hint=f"write the path out in full (or as ./{given} for a folder named {home} here)",
        ) from None
    if not path.exists():
        raise InputFileError(f"{origin} names {path}, which does not exist", hint=LAYOUTS_HINT)
    if not (path.is_dir() or path.is_file()):  # a device such as /dev/null, or a pipe
        raise InputFileError(f"{origin} names {path}, which is neither a folder nor a file", hint=LAYOUTS_HINT)
    return path


def _dpkg_data_dir() -> Path | None:
    """The folder of the package's IDX files if dpkg knows it (a non-default prefix)."""
    try:
        listing = subprocess.run(["dpkg", "-L", "dataset-fashion-mnist"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None  # no dpkg: not a Debian system
    for line in listing.splitlines():
        path = Path(line.strip())
        if path.name.startswith("train-images-idx3-ubyte") and path.is_file():
            return path.parent
    return None


def load_splits(data: str | None, input_shape: tuple[int, ...], val_fraction: float = 0.1, seed: int = 0, limit: int = 0) -> Splits:
    """Training, validation and test data whose samples have `input_shape`.

    The validation split is `val_fraction` of the training data, drawn with
    `seed`; `limit` > 0 keeps only the first `limit` training samples first.
    """
    if not 0 <= val_fraction < 1:
        raise UsageError(f"the validation fraction must be in [0, 1), not {val_fraction}")
    if limit < 0:
        raise UsageError(f"the sample limit must be 0 (no limit) or positive, not {limit}")
    input_shape = tuple(input_shape)
    train, test = read(find_data_dir(data), input_shape)
    for part in (train, test):
        if part is not None:
            check_sample_shape(part, input_shape)
    if limit:
        train = Dataset(train.x[:limit], train.y[:limit], train.classes, train.source)
    train, val = _hold_out(train, val_fraction, seed)
    return Splits(train, val, test)


def normalisation(x: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of N x C x ... training samples."""
    dims = [0, *range(2, x.dim())]
    std, mean = torch.std_mean(x, dim=dims, correction=0)
    # A constant channel would make normalising divide by zero; 1 leaves it as it is.
    std = torch.where(std > 0, std, torch.ones_like(std))
    return mean.tolist(), std.tolist()


def check_sample_shape(part: Dataset, input_shape: tuple[int, ...]) -> None:
    found = tuple(part.x.shape[1:])
    if found != input_shape:
        raise InputFileError(
            f"data has samples of {shape_text(found)} but the spec's input is {shape_text(input_shape)} ({part.source})",
            hint=f"change the spec's input to {shape_text(found)}, or use data whose samples are {shape_text(input_shape)}",
        )


def _hold_out(train: Dataset, val_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    n = len(train)
    n_val = round(n * val_fraction)
    if val_fraction > 0 and not 0 < n_val < n:
        raise InputFileError(
            f"{n} training samples are too few to hold out {val_fraction:g} of them for validation",
            hint="use more training samples, or another validation fraction",
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = order[:n_val], order[n_val:]
    return (
        Dataset(train.x[train_idx], train.y[train_idx], train.classes, train.source),
        Dataset(train.x[val_idx], train.y[val_idx], train.classes, train.source),
    )
