"""The three layouts data can take on disk, each read into a `Dataset`: IDX files, image folders, `.npz` arrays.

`read` tells them apart; data.py finds the data and splits it. Every problem with a file is raised
as an `InputFileError` that names it.
"""

from __future__ import annotations

import gzip
import hashlib
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from specc.errors import InputFileError
from specc.runners.images import image_pixels  # predict reads images the same way
from specc.shapes import shape_text

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}
MAX_UNNAMED_CLASSES = 2**20  # far more than any classifier has: a larger label is an ID, not a class index

LAYOUTS_HINT = (
    "--data must be one of: a folder of IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
    "optionally t10k-*); a folder with train/ (and optionally test/) holding one sub-folder of images per class, "
    "or directly one sub-folder per class; or an .npz file (or a folder with train.npz and optionally test.npz) "
    "with arrays x and y"
)


@dataclass
class Dataset:
    x: torch.Tensor  # float32, N x C x H x W (or N x C x L); images scaled to [0, 1]
    y: torch.Tensor  # int64 labels (N, or N x H x W masks), or float32 targets (N or N x K)
    classes: list[str]  # class names, index = label
    source: str  # where the samples came from, for people to read

    def __len__(self) -> int:
        return len(self.y)


def read(path: Path, input_shape: tuple[int, ...]) -> tuple[Dataset, Dataset | None]:
    """The training data at `path`, and its test data where the layout has some."""
    if path.is_file():
        if path.suffix == ".npz":
            return _read_npz(path, input_shape, None), None
        raise InputFileError(f"{path} is not a data set specc can read", hint=LAYOUTS_HINT)
    if _idx_file(path, "train-images-idx3-ubyte"):
        return _read_idx_dir(path)
    if (path / "train.npz").is_file():
        train = _read_npz(path / "train.npz", input_shape, None)
        test_file = path / "test.npz"
        return train, _read_npz(test_file, input_shape, train.classes) if test_file.is_file() else None
    if (path / "train").is_dir():
        train = _read_image_dir(path / "train", input_shape, None)
        test_dir = path / "test"
        return train, _read_image_dir(test_dir, input_shape, train.classes) if test_dir.is_dir() else None
    if any(child.is_dir() for child in path.iterdir()):
        return _read_image_dir(path, input_shape, None), None
    raise InputFileError(f"{path} holds no IDX files, no train.npz and no image folders", hint=LAYOUTS_HINT)


def _check_labels(y: torch.Tensor | np.ndarray, classes: list[str], where: str) -> None:
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= len(classes)):
        raise InputFileError(
            f"{where} has labels from {int(y.min())} to {int(y.max())}, but there are {len(classes)} classes",
            hint=f"labels must be 0..{len(classes) - 1}, one per class",
        )


# --- IDX files (MNIST, Fashion-MNIST) ---------------------------------------


def _idx_file(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


# sha256 of Fashion-MNIST's decompressed train-labels file: MNIST and Fashion-MNIST share one
# layout and ten labels, so the content, not the folder's name, tells which names the labels have.
FASHION_MNIST_TRAIN_LABELS = "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"


def is_fashion_mnist(folder: Path) -> bool:
    if "fashion" in folder.absolute().name.lower():
        return True
    labels = _idx_file(folder, "train-labels-idx1-ubyte")
    return labels is not None and hashlib.sha256(_read_bytes(labels)).hexdigest() == FASHION_MNIST_TRAIN_LABELS


def _read_idx_dir(folder: Path) -> tuple[Dataset, Dataset | None]:
    fashion = is_fashion_mnist(folder)
    classes = FASHION_MNIST_CLASSES if fashion else [str(d) for d in range(10)]
    source = f"{'Fashion-MNIST' if fashion else 'MNIST-style'} IDX files in {folder}"
    train = _read_idx_pair(folder, "train", classes, source)
    has_test = _idx_file(folder, "t10k-images-idx3-ubyte") or _idx_file(folder, "t10k-labels-idx1-ubyte")
    return train, _read_idx_pair(folder, "t10k", classes, source) if has_test else None


def _read_idx_pair(folder: Path, prefix: str, classes: list[str], source: str) -> Dataset:
    files = []
    for stem in (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"):
        found = _idx_file(folder, stem)
        if found is None:
            raise InputFileError(f"{folder} has no {stem} (nor {stem}.gz)", hint=LAYOUTS_HINT)
        files.append(found)
    images, labels = _read_idx(files[0], 3), _read_idx(files[1], 1)
    if len(images) != len(labels):
        raise InputFileError(
            f"{files[0]} has {len(images)} images but {files[1]} has {len(labels)} labels",
            hint="the two files must come from the same download",
        )
    x = images.unsqueeze(1).to(torch.float32).div_(255)
    y = labels.to(torch.int64)
    _check_labels(y, classes, str(files[1]))
    return Dataset(x, y, classes, source)


def _read_idx(path: Path, ndim: int) -> torch.Tensor:
    """The uint8 array of an IDX file: a 4-byte magic, one big-endian uint32 per dimension, the data."""
    raw = _read_bytes(path)
    magic = raw[:4]
    if len(magic) < 4 or magic[:2] != b"\0\0" or magic[3] != ndim:
        raise InputFileError(
            f"{path} is not an IDX file with {ndim} dimension(s) (it starts with {magic.hex() or 'nothing'})",
            hint="use the train-/t10k- files of an MNIST-style download, unchanged",
        )
    if magic[2] != 0x08:
        raise InputFileError(f"{path} holds IDX type 0x{magic[2]:02x}; specc reads only unsigned bytes (0x08)")
    header = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4)) if len(raw) >= header else ()
    expected = header + int(np.prod(dims)) if dims else header
    if len(raw) != expected:
        raise InputFileError(
            f"{path} should hold {expected} bytes (dimensions {shape_text(dims) or '?'}) but holds {len(raw)}",
            hint="the file is truncated or damaged; download it again",
        )
    # bytearray makes the buffer writable, so torch can share it instead of warning.
    return torch.from_numpy(np.frombuffer(bytearray(raw), np.uint8, offset=header).reshape(dims))


def _read_bytes(path: Path) -> bytes:
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        return gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as e:
        raise InputFileError(f"{path} is not a complete gzip file ({e})", hint="download it again") from None


# --- image folders -----------------------------------------------------------


def _read_image_dir(folder: Path, input_shape: tuple[int, ...], classes: list[str] | None) -> Dataset:
    """One sub-folder per class; `classes` (the training classes) fixes the labels of a test folder."""
    if len(input_shape) != 3 or input_shape[0] not in (1, 3):
        raise InputFileError(
            f"{folder} holds images, which have 1 (grayscale) or 3 (RGB) channels, but the spec's input is {shape_text(input_shape)}",
            hint="give the spec an input of 1xHxW or 3xHxW",
        )
    mode = "L" if input_shape[0] == 1 else "RGB"
    height, width = input_shape[1], input_shape[2]
    class_dirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    classes = classes or [d.name for d in class_dirs]
    arrays, labels = [], []
    for class_dir in class_dirs:
        if class_dir.name not in classes:
            raise InputFileError(f"{class_dir} is a class the training folder does not have", hint=f"the classes are {classes}")
        files = sorted(f for f in class_dir.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputFileError(f"class folder {class_dir} has no images", hint="add PNG, JPEG or BMP files, or remove it")
        for file in files:
            arrays.append(_read_image(file, mode, height, width))
            labels.append(classes.index(class_dir.name))
    if not arrays:
        raise InputFileError(f"{folder} has no class sub-folders of images", hint=LAYOUTS_HINT)
    stacked = np.stack(arrays).reshape(len(arrays), height, width, input_shape[0])
    x = torch.from_numpy(stacked).permute(0, 3, 1, 2).to(torch.float32).div_(255)
    return Dataset(x, torch.tensor(labels, dtype=torch.int64), classes, f"image folders in {folder}")


def _read_image(file: Path, mode: str, height: int, width: int) -> np.ndarray:
    try:
        with Image.open(file) as image:
            if image.size != (width, height):
                raise InputFileError(
                    f"{file} is {shape_text((image.height, image.width))} pixels (height×width) "
                    f"but the spec's input is {shape_text((height, width))}",
                    hint="resize the images, or change the spec's input size",
                )
            return image_pixels(image, mode)
    except Image.DecompressionBombError as e:  # Pillow refuses to decode so many pixels, for fear of running out of memory
        raise InputFileError(
            f"{file} is too large to read ({e})", hint=f"the spec's input is {shape_text((height, width))}: resize the images to it"
        ) from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InputFileError(f"{file} is not a readable image ({e})", hint="replace or remove the file") from None


# --- .npz arrays -------------------------------------------------------------


def _read_npz(path: Path, input_shape: tuple[int, ...], classes: list[str] | None) -> Dataset:
    """Arrays x and y, and optionally classes; `classes` (the training classes) applies to a test file."""
    x, y, names = _load_npz(path)
    samples = npz_samples(path, x, input_shape)
    _check_targets(path, y, len(samples))
    if y.dtype.kind == "f":  # values to regress, or probabilities: the names, if any, name the outputs
        per_sample = int(np.prod(y.shape[1:]))
        names = names if names is not None else classes if classes is not None else [str(i) for i in range(per_sample)]
        return Dataset(samples, torch.from_numpy(y.astype(np.float32)), names, f"arrays in {path}")
    y = y.astype(np.uint8) if y.dtype.kind == "b" else y
    classes = _npz_classes(path, y, names, classes)
    _check_labels(y, classes, str(path))  # before the cast to int64, which would turn a uint64 label past 2**63 negative
    return Dataset(samples, torch.from_numpy(y.astype(np.int64)), classes, f"arrays in {path}")


def _check_targets(path: Path, y: np.ndarray, samples: int) -> None:
    """y is N class labels, N×K labels or values, or N×H×W masks: integers, booleans or finite floats, one entry per sample."""
    shapes = "N integer labels, N×K floats or 0/1 labels, or N×H×W integer masks"
    if y.dtype.kind not in "iubf" or y.ndim == 0 or len(y) != samples:
        raise InputFileError(
            f"{path}: y must hold the targets of the {samples} samples ({shapes}), not {y.dtype} {shape_text(y.shape) or 'scalar'}",
            hint="save it with np.savez(path, x=samples, y=targets)",
        )
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise InputFileError(f"{path}: y holds NaN or infinite targets", hint="drop those samples or fill in their targets")


def _load_npz(path: Path) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """The arrays x and y, and the class names if the file has them."""
    hint = "save it with np.savez(path, x=samples, y=labels, classes=np.array(names)); object arrays are not read"
    if not zipfile.is_zipfile(path):  # np.load would read anything else as one array, or try pickle
        raise InputFileError(f"{path} is not an .npz archive", hint=hint)
    try:
        with np.load(path, allow_pickle=False) as arrays:
            found = sorted(arrays.files)
            if "x" not in found or "y" not in found:
                raise InputFileError(
                    f"{path} has arrays {found or 'none'}, but needs x (samples) and y (labels)",
                    hint="save it with np.savez(path, x=samples, y=labels)",
                )
            names = arrays["classes"] if "classes" in found else None
            x, y = arrays["x"], arrays["y"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise InputFileError(f"{path} is not a readable .npz file ({e})", hint=hint) from None
    for name, array in (("x", x), ("y", y), ("classes", names)):
        if array is not None and not isinstance(array, np.ndarray):  # np.load gives a member that is not .npy data as bytes
            raise InputFileError(f"{path}: {name} is not an array saved by numpy (not .npy data)", hint=hint)
    if names is not None and names.ndim != 1:
        raise InputFileError(
            f"{path}: classes must be a list of names, one per class, not a {names.dtype} array of shape {names.shape}", hint=hint
        )
    return x, y, None if names is None else [str(c) for c in names.tolist()]


def _npz_classes(path: Path, y: np.ndarray, names: list | None, train_classes: list[str] | None) -> list[str]:
    """The file's own class names, else the training ones, else one number per label."""
    if names is None:
        return train_classes if train_classes is not None else [str(c) for c in range(_largest_label(path, y) + 1)]
    # Label i must mean the same class in both splits, or the test accuracy measures nothing.
    if train_classes is not None and names != train_classes:
        raise InputFileError(
            f"{path} names the classes {names}, but the training data names {train_classes}",
            hint="save train.npz and test.npz with the same classes array, in the same order, or leave it out of test.npz",
        )
    return names


def _largest_label(path: Path, y: np.ndarray) -> int:
    """The largest label of classes that have no names, each of which becomes a class of its own."""
    largest = int(y.max(initial=0))
    # Labels such as IDs or codes would make millions of classes (and as many outputs), and exhaust memory listing them.
    if largest >= MAX_UNNAMED_CLASSES:
        raise InputFileError(
            f"{path}: y holds labels up to {largest}, but labels are class indices 0, 1, 2, ..., below {MAX_UNNAMED_CLASSES}",
            hint="number the classes from 0, and keep what they stand for as names: np.savez(path, x=..., y=..., classes=np.array(names))",
        )
    return largest


def npz_samples(path: Path, x: np.ndarray, input_shape: tuple[int, ...]) -> torch.Tensor:
    if x.ndim == 0:
        raise InputFileError(
            f"{path}: x is a single number, not an array of samples", hint=f"x must be N x {shape_text(input_shape)}, one sample per row"
        )
    if x.dtype == np.uint8:
        samples = torch.from_numpy(x).to(torch.float32).div_(255)
    elif x.dtype.kind == "f":  # through numpy: torch has no longdouble, nor float16 on every path
        samples = torch.from_numpy(x.astype(np.float32))
    else:
        raise InputFileError(f"{path}: x is {x.dtype}, but must be uint8 (scaled by 1/255) or float")
    if not torch.isfinite(samples).all():
        raise InputFileError(f"{path}: x holds NaN or infinite values", hint="replace or drop the damaged samples")
    return samples.unsqueeze(1) if samples.dim() == len(input_shape) else samples  # N x H x W: the channel is implied
