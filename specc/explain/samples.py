"""The samples `specc explain` looks at: image files, an .npz array, or test samples of the training data by index.

Each is read the way training and predict read it (uint8 pixels scaled by
1/255, floats as they are) and must have the network's input size: a silent
stretch would explain a picture the user did not give.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import InputFileError, UsageError
from ..runners import data, layouts
from ..runners.images import image_pixels

_IMAGE_MODES = {1: "L", 3: "RGB"}  # input channels -> Pillow mode


@dataclass
class Sample:
    name: str  # for titles and file names: the image's stem, `x[3]`, `test 17`
    x: torch.Tensor  # C x H x W, raw as in training (images in [0, 1])
    label: int | None  # the true class where the data says it


def from_images(paths: list[str | Path], shape: tuple[int, ...]) -> list[Sample]:
    return [Sample(Path(path).stem, _read_image(Path(path), shape), None) for path in paths]


def from_npz(path: str | Path, shape: tuple[int, ...]) -> list[Sample]:
    """Every sample of an .npz file's x, with its label where y holds one class index per sample."""
    from ..runners.predict import read_npz

    path = Path(path)
    x = layouts.npz_samples(path, read_npz(path), shape)
    data.check_sample_shape(data.Dataset(x, torch.zeros(len(x)), [], str(path)), shape)
    labels = _npz_labels(path, len(x))
    return [Sample(f"{path.stem}[{i}]", sample, labels[i] if labels is not None else None) for i, sample in enumerate(x)]


def test_split(data_dir: str | None, shape: tuple[int, ...]) -> data.Dataset:
    """The test split of the data training reads (`--data`, $SPECC_DATA, Fashion-MNIST)."""
    splits = data.load_splits(data_dir, shape, val_fraction=0)
    if splits.test is None:
        raise InputFileError(f"the data ({splits.train.source}) has no test split to take samples from", hint=data.LAYOUTS_HINT)
    return splits.test


def from_test_split(test: data.Dataset, indices: list[int]) -> list[Sample]:
    """The test samples at `indices`, with their labels."""
    wrong = [i for i in indices if not 0 <= i < len(test)]
    if wrong:
        raise UsageError(
            f"sample {wrong[0]} is out of range: the test split of {test.source} has {len(test):,} samples",
            hint=f"choose indices from 0 to {len(test) - 1}",
        )
    labelled = test.y.dim() == 1 and not test.y.is_floating_point()
    return [Sample(f"test {i}", test.x[i], int(test.y[i]) if labelled else None) for i in indices]


def parse_indices(text: str) -> list[int]:
    """`0,5,9` or `0-9` or both mixed, as a list of indices."""
    indices: list[int] = []
    try:
        for part in text.split(","):
            first, _, last = part.strip().partition("-")
            indices += range(int(first), int(last) + 1) if last else [int(first)]
    except ValueError:
        raise UsageError(f"--samples {text}: not a list of indices", hint="e.g. --samples 0,5,9 or --samples 0-9") from None
    return indices


def _read_image(path: Path, shape: tuple[int, ...]) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    channels, height, width = shape
    if channels not in _IMAGE_MODES:
        raise UsageError(f"the network takes {channels}-channel inputs, not 1- or 3-channel images", hint="pass the samples with --npz")
    if not path.is_file():
        raise InputFileError(f"no such image file: {path}")
    try:
        with Image.open(path) as image:
            pixels = image_pixels(image, _IMAGE_MODES[channels])
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise InputFileError(f"{path} is not a readable image ({err})", hint="specc explain reads PNG and JPEG files") from None
    if pixels.shape[:2] != (height, width):
        raise InputFileError(
            f"{path} is {pixels.shape[0]}×{pixels.shape[1]} pixels (height×width), but the network takes {height}×{width}",
            hint=f"resize or crop it to {height}×{width} first",
        )
    chw = pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
    return torch.from_numpy(np.array(chw)).float().div_(255)


def _npz_labels(path: Path, n: int) -> list[int] | None:
    with np.load(path, allow_pickle=False) as arrays:
        if "y" not in arrays.files:
            return None
        y = arrays["y"]
    if y.shape != (n,) or y.dtype.kind not in "iu":
        return None  # not one class index per sample: explain the top class instead
    return [int(v) for v in y]
