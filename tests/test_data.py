"""Data loading: IDX files, image folders and .npz arrays, made small in each test."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from specc.errors import InputFileError, UsageError
from specc.runners import data
from specc.runners.data import find_data_dir, is_fashion_mnist, load_splits, normalisation

from .helpers import REAL_FASHION_MNIST


def write_idx(path: Path, array: np.ndarray) -> Path:
    """An IDX file of unsigned bytes, gzipped when the name ends in .gz."""
    raw = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def distinct_images(n: int, size: int = 4) -> np.ndarray:
    """n images whose first two pixels spell their index, so a sample can be traced back."""
    images = np.zeros((n, size, size), dtype=np.uint8)
    images[:, 0, 0] = np.arange(n) // 256
    images[:, 0, 1] = np.arange(n) % 256
    return images


def make_idx_dir(folder: Path, n_train: int = 20, n_test: int = 5, gz: bool = True) -> Path:
    folder.mkdir(parents=True)
    ext = ".gz" if gz else ""
    write_idx(folder / f"train-images-idx3-ubyte{ext}", distinct_images(n_train))
    write_idx(folder / f"train-labels-idx1-ubyte{ext}", np.arange(n_train) % 10)
    if n_test:
        write_idx(folder / f"t10k-images-idx3-ubyte{ext}", distinct_images(n_test))
        write_idx(folder / f"t10k-labels-idx1-ubyte{ext}", np.arange(n_test) % 10)
    return folder


def sample_index(x: torch.Tensor) -> list[int]:
    pixels = (x[:, 0, 0, :2] * 255).round().long()
    return (pixels[:, 0] * 256 + pixels[:, 1]).tolist()


def write_image(path: Path, size: tuple[int, int] = (4, 4), mode: str = "L", value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)  # size is (width, height)


# --- IDX ---------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_loads_with_shapes_dtypes_and_scaling(tmp_path, gz):
    folder = make_idx_dir(tmp_path / "digits", gz=gz)
    splits = load_splits(str(folder), (1, 4, 4), val_fraction=0.25)
    assert splits.train.x.dtype == torch.float32 and splits.train.y.dtype == torch.int64
    assert splits.train.x.shape == (15, 1, 4, 4) and splits.val.x.shape == (5, 1, 4, 4)
    assert splits.test is not None and splits.test.x.shape == (5, 1, 4, 4)
    assert splits.test.y.tolist() == [0, 1, 2, 3, 4]
    assert splits.test.x[3, 0, 0, 1].item() == pytest.approx(3 / 255)
    assert splits.train.classes == [str(d) for d in range(10)]
    assert "IDX files" in splits.train.source and str(folder) in splits.train.source


def test_fashion_folder_names_the_fashion_classes(tmp_path):
    splits = load_splits(str(make_idx_dir(tmp_path / "my-fashion-mnist")), (1, 4, 4))
    assert splits.train.classes[0] == "T-shirt/top" and splits.train.classes[9] == "Ankle boot"
    assert len(splits.train.classes) == 10 and "Fashion-MNIST" in splits.train.source


def test_labels_stay_with_their_images_through_the_split(tmp_path):
    splits = load_splits(str(make_idx_dir(tmp_path / "digits", n_train=40)), (1, 4, 4), val_fraction=0.25)
    for part in (splits.train, splits.val):
        assert [i % 10 for i in sample_index(part.x)] == part.y.tolist()


def test_validation_split_is_disjoint_complete_and_seeded(tmp_path):
    folder = str(make_idx_dir(tmp_path / "digits", n_train=100))
    splits = load_splits(folder, (1, 4, 4), val_fraction=0.2, seed=1)
    train, val = set(sample_index(splits.train.x)), set(sample_index(splits.val.x))
    assert len(train) == 80 and len(val) == 20
    assert not train & val and train | val == set(range(100))
    assert set(sample_index(load_splits(folder, (1, 4, 4), val_fraction=0.2, seed=1).val.x)) == val
    assert set(sample_index(load_splits(folder, (1, 4, 4), val_fraction=0.2, seed=2).val.x)) != val


def test_limit_keeps_the_first_training_images_before_the_split(tmp_path):
    splits = load_splits(str(make_idx_dir(tmp_path / "digits", n_train=100)), (1, 4, 4), val_fraction=0.1, limit=30)
    assert len(splits.train) == 27 and len(splits.val) == 3
    assert set(sample_index(splits.train.x)) | set(sample_index(splits.val.x)) == set(range(30))
    assert len(splits.test) == 5  # the test split is never cut


def test_folder_without_t10k_files_has_no_test_split(tmp_path):
    assert load_splits(str(make_idx_dir(tmp_path / "digits", n_test=0)), (1, 4, 4)).test is None


@pytest.mark.parametrize("gz", [True, False])
def test_truncated_idx_names_the_file_and_both_sizes(tmp_path, gz):
    folder = make_idx_dir(tmp_path / "digits", gz=gz)
    images = folder / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
    raw = gzip.decompress(images.read_bytes()) if gz else images.read_bytes()
    cut = raw[:-7]
    images.write_bytes(gzip.compress(cut) if gz else cut)
    with pytest.raises(InputFileError) as e:
        load_splits(str(folder), (1, 4, 4))
    assert str(images) in str(e.value) and f"should hold {len(raw)} bytes" in str(e.value)
    assert f"holds {len(cut)}" in str(e.value)


def test_cut_gzip_stream_is_reported(tmp_path):
    folder = make_idx_dir(tmp_path / "digits")
    images = folder / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:30])
    with pytest.raises(InputFileError, match="not a complete gzip file"):
        load_splits(str(folder), (1, 4, 4))


def test_idx_with_wrong_magic_is_rejected(tmp_path):
    folder = make_idx_dir(tmp_path / "digits", gz=False)
    (folder / "train-labels-idx1-ubyte").write_bytes(b"PK\x03\x04 not an idx file")
    with pytest.raises(InputFileError, match="is not an IDX file with 1 dimension"):
        load_splits(str(folder), (1, 4, 4))


def test_idx_of_another_element_type_is_rejected(tmp_path):
    folder = make_idx_dir(tmp_path / "digits", gz=False)
    raw = bytearray((folder / "train-images-idx3-ubyte").read_bytes())
    raw[2] = 0x0D  # float
    (folder / "train-images-idx3-ubyte").write_bytes(bytes(raw))
    with pytest.raises(InputFileError, match=r"IDX type 0x0d; specc reads only unsigned bytes"):
        load_splits(str(folder), (1, 4, 4))


def test_label_and_image_counts_must_match(tmp_path):
    folder = make_idx_dir(tmp_path / "digits")
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(19))
    with pytest.raises(InputFileError, match="has 20 images but .* has 19 labels"):
        load_splits(str(folder), (1, 4, 4))


def test_missing_label_file_is_named(tmp_path):
    folder = make_idx_dir(tmp_path / "digits")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(InputFileError, match="has no t10k-labels-idx1-ubyte"):
        load_splits(str(folder), (1, 4, 4))


def test_samples_of_another_shape_than_the_spec_are_rejected(tmp_path):
    with pytest.raises(InputFileError, match="data has samples of 1×4×4 but the spec's input is 3×32×32"):
        load_splits(str(make_idx_dir(tmp_path / "digits")), (3, 32, 32))


def test_too_few_samples_for_a_validation_split(tmp_path):
    with pytest.raises(InputFileError, match="too few to hold out"):
        load_splits(str(make_idx_dir(tmp_path / "digits", n_train=4)), (1, 4, 4), val_fraction=0.1)


# --- image folders -----------------------------------------------------------


def test_image_folder_with_train_and_test(tmp_path):
    for split, n in (("train", 3), ("test", 1)):
        for cls in ("cat", "dog"):
            for i in range(n):
                write_image(tmp_path / split / cls / f"{i}.png", value=200 if cls == "dog" else 10)
    splits = load_splits(str(tmp_path), (1, 4, 4), val_fraction=1 / 3)
    assert splits.train.classes == ["cat", "dog"]
    assert len(splits.train) == 4 and len(splits.val) == 2 and splits.test.y.tolist() == [0, 1]
    assert splits.test.x.shape == (2, 1, 4, 4)
    assert splits.test.x[1].unique().tolist() == [pytest.approx(200 / 255)]


def test_class_folders_directly_in_rgb(tmp_path):
    write_image(tmp_path / "b" / "1.jpg", size=(5, 3), mode="RGB", value=(255, 0, 0))
    write_image(tmp_path / "a" / "1.bmp", size=(5, 3), mode="L")
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    splits = load_splits(str(tmp_path), (3, 3, 5), val_fraction=0)
    assert splits.train.classes == ["a", "b"] and splits.test is None and len(splits.val) == 0
    assert splits.train.x.shape == (2, 3, 3, 5)
    red = splits.train.x[splits.train.y == 1][0]
    assert red[0].min() > 0.9 and red[1].max() < 0.1  # channels first, grayscale made RGB


@pytest.mark.parametrize("channels", [1, 3])
def test_16_bit_images_are_scaled_not_clipped(tmp_path, channels):
    wide = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)  # 0, 1, 128 and 255 in 8 bits
    (tmp_path / "a").mkdir()
    for name in ("1.png", "2.png"):
        Image.fromarray(wide).save(tmp_path / "a" / name)
    assert Image.open(tmp_path / "a" / "1.png").mode.startswith("I")  # really 16-bit as Pillow reads it
    x = load_splits(str(tmp_path), (channels, 1, 4), val_fraction=0).train.x
    assert (x * 255).round()[0].tolist() == [[[0.0, 1.0, 128.0, 255.0]]] * channels


def test_image_of_the_wrong_size_is_named(tmp_path):
    write_image(tmp_path / "a" / "good.png")
    write_image(tmp_path / "a" / "big.png", size=(6, 5))
    with pytest.raises(InputFileError) as e:
        load_splits(str(tmp_path), (1, 4, 4))
    assert "big.png is 5×6 pixels (height×width) but the spec's input is 4×4" in str(e.value)


def test_class_folder_without_images(tmp_path):
    write_image(tmp_path / "train" / "a" / "1.png")
    (tmp_path / "train" / "empty").mkdir()
    with pytest.raises(InputFileError, match="class folder .*empty has no images"):
        load_splits(str(tmp_path), (1, 4, 4))


def test_empty_folder_explains_the_layouts(tmp_path):
    with pytest.raises(InputFileError) as e:
        load_splits(str(tmp_path), (1, 4, 4))
    assert "no IDX files" in str(e.value) and "train.npz" in e.value.diagnostics[0].hint


def test_corrupt_image_is_named(tmp_path):
    write_image(tmp_path / "a" / "1.png")
    (tmp_path / "a" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(InputFileError, match=r"2\.png is not a readable image"):
        load_splits(str(tmp_path), (1, 4, 4))


def test_image_over_pillows_pixel_limit_is_named(tmp_path, monkeypatch):
    write_image(tmp_path / "a" / "1.png")
    # A real decompression bomb would take seconds to write; lowering Pillow's limit takes the same path.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4)  # 4x4 pixels is past twice the limit: an error, not a warning
    with pytest.raises(InputFileError) as e:
        load_splits(str(tmp_path), (1, 4, 4), val_fraction=0)
    assert f"{tmp_path / 'a' / '1.png'} is too large to read" in str(e.value) and "16 pixels" in str(e.value)
    assert "resize the images" in e.value.diagnostics[0].hint


def test_test_folder_with_an_unknown_class(tmp_path):
    write_image(tmp_path / "train" / "a" / "1.png")
    write_image(tmp_path / "train" / "a" / "2.png")
    write_image(tmp_path / "test" / "zebra" / "1.png")
    with pytest.raises(InputFileError, match="zebra is a class the training folder does not have"):
        load_splits(str(tmp_path), (1, 4, 4), val_fraction=0.5)


def test_images_need_one_or_three_channels(tmp_path):
    write_image(tmp_path / "a" / "1.png")
    with pytest.raises(InputFileError, match="1 .grayscale. or 3 .RGB. channels"):
        load_splits(str(tmp_path), (4, 4, 4))


# --- npz ---------------------------------------------------------------------


def test_npz_file_of_uint8_images_gets_a_channel_and_scaling(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=distinct_images(10), y=np.arange(10) % 3)
    splits = load_splits(str(path), (1, 4, 4), val_fraction=0.2)
    assert splits.train.x.shape == (8, 1, 4, 4) and splits.test is None
    assert splits.train.classes == ["0", "1", "2"]
    assert [i % 3 for i in sample_index(splits.train.x)] == splits.train.y.tolist()


def test_npz_folder_with_float_data_and_class_names(tmp_path):
    x = np.random.default_rng(0).normal(size=(10, 2, 8)).astype(np.float64)
    np.savez(tmp_path / "train.npz", x=x, y=np.arange(10) % 2, classes=np.array(["no", "yes"]))
    np.savez(tmp_path / "test.npz", x=x[:4], y=np.zeros(4, dtype=np.int32))
    splits = load_splits(str(tmp_path), (2, 8), val_fraction=0.5)
    assert splits.train.x.dtype == torch.float32 and splits.train.x.shape == (5, 2, 8)
    assert splits.train.classes == ["no", "yes"] and splits.test.classes == ["no", "yes"]
    assert torch.allclose(splits.test.x, torch.from_numpy(x[:4]).float())


@pytest.mark.parametrize(
    "test_names, train_names",
    [
        (["a", "b", "c"], ["a", "b"]),  # more classes: the test labels would run past the network's outputs
        (["b", "a"], ["a", "b"]),  # another order: every label would mean the other class
        (["a", "b"], None),  # the training labels are bare numbers
    ],
)
def test_npz_test_split_must_name_the_training_classes(tmp_path, test_names, train_names):
    names = {} if train_names is None else {"classes": np.array(train_names)}
    np.savez(tmp_path / "train.npz", x=np.zeros((4, 4, 4), np.uint8), y=np.array([0, 1, 0, 1]), **names)
    np.savez(tmp_path / "test.npz", x=np.zeros((2, 4, 4), np.uint8), y=np.array([0, 1]), classes=np.array(test_names))
    with pytest.raises(InputFileError) as e:
        load_splits(str(tmp_path), (1, 4, 4), val_fraction=0.5)
    assert e.value.exit_code == 2
    train_classes = train_names or ["0", "1"]
    assert str(e.value) == f"{tmp_path / 'test.npz'} names the classes {test_names}, but the training data names {train_classes}"
    assert "same classes array" in e.value.diagnostics[0].hint


def test_npz_test_split_may_repeat_the_training_classes(tmp_path):
    for split in ("train", "test"):
        np.savez(tmp_path / f"{split}.npz", x=np.zeros((4, 4, 4), np.uint8), y=np.array([0, 1, 0, 1]), classes=np.array(["a", "b"]))
    assert load_splits(str(tmp_path), (1, 4, 4), val_fraction=0.5).test.classes == ["a", "b"]


def test_npz_without_x_and_y_names_the_keys_it_has(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((2, 4, 4)), labels=np.zeros(2))
    with pytest.raises(InputFileError, match=r"has arrays \['images', 'labels'\], but needs x"):
        load_splits(str(tmp_path / "d.npz"), (1, 4, 4))


def test_npz_labels_beyond_the_class_names(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 4, 4), np.uint8), y=np.array([0, 2]), classes=np.array(["a", "b"]))
    with pytest.raises(InputFileError, match="labels from 0 to 2, but there are 2 classes"):
        load_splits(str(tmp_path / "d.npz"), (1, 4, 4), val_fraction=0.5)


@pytest.mark.parametrize("label", [2**20, 10**12, 2**62, 2**64 - 1])
def test_npz_labels_too_large_to_be_class_indices(tmp_path, label):
    # Without names, each label up to the largest would become a class: 10**12 of them used to exhaust memory.
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 4, 4), np.uint8), y=np.array([0, label], dtype=np.uint64))
    with pytest.raises(InputFileError) as e:
        load_splits(str(tmp_path / "d.npz"), (1, 4, 4), val_fraction=0.5)
    assert f"y holds labels up to {label}, but labels are class indices 0, 1, 2, ..., below {2**20}" in str(e.value)
    assert "classes=np.array(names)" in e.value.diagnostics[0].hint


def test_npz_labels_must_stay_below_the_number_of_class_names(tmp_path):
    named = {"x": np.zeros((2, 4, 4), np.uint8), "classes": np.array(["a", "b"])}
    np.savez(tmp_path / "d.npz", y=np.array([0, 2**64 - 1], dtype=np.uint64), **named)  # past int64: checked before the cast
    with pytest.raises(InputFileError, match=f"labels from 0 to {2**64 - 1}, but there are 2 classes"):
        load_splits(str(tmp_path / "d.npz"), (1, 4, 4), val_fraction=0.5)
    # With a name for every class, the number of names is the only limit.
    np.savez(tmp_path / "d.npz", y=np.array([0, 2**20]), **{**named, "classes": np.array(["a"] * (2**20 + 1))})
    assert len(load_splits(str(tmp_path / "d.npz"), (1, 4, 4), val_fraction=0.5).train.classes) == 2**20 + 1


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x": np.array(3.0), "y": np.array([0])}, "x is a single number, not an array of samples"),
        ({"x": np.zeros((2, 4, 4)), "y": np.array([0, 1]), "classes": np.array("ab")}, "classes must be a list of names"),
    ],
)
def test_npz_arrays_of_no_dimensions(tmp_path, arrays, message):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(InputFileError, match=message):
        load_splits(str(tmp_path / "d.npz"), (1, 4, 4), val_fraction=0.5)


def test_file_that_is_not_npz(tmp_path):
    (tmp_path / "d.npz").write_bytes(b"\x93NUMPY pretending")
    with pytest.raises(InputFileError, match="is not an .npz archive"):
        load_splits(str(tmp_path / "d.npz"), (1, 4, 4))
    (tmp_path / "d.csv").write_text("1,2,3")
    with pytest.raises(InputFileError, match="is not a data set specc can read") as e:
        load_splits(str(tmp_path / "d.csv"), (1, 4, 4))
    assert "IDX files" in e.value.diagnostics[0].hint


# --- finding the data --------------------------------------------------------


@pytest.fixture
def no_installed_data(tmp_path, monkeypatch):
    """No Fashion-MNIST folder, no SPECC_DATA, and no dpkg on PATH."""
    monkeypatch.setattr(data, "FASHION_MNIST_DIR", tmp_path / "not-installed")
    monkeypatch.delenv("SPECC_DATA", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))


def test_missing_data_says_how_to_install_it(no_installed_data):
    with pytest.raises(UsageError) as e:
        find_data_dir(None)
    hint = e.value.diagnostics[0].hint
    assert "apt-get update && apt-get install -y dataset-fashion-mnist" in hint
    assert "--data DIR" in hint and "SPECC_DATA" in hint


def test_explicit_data_then_environment(no_installed_data, tmp_path, monkeypatch):
    monkeypatch.setenv("SPECC_DATA", str(tmp_path))
    assert find_data_dir(None) == tmp_path
    (tmp_path / "given").mkdir()
    assert find_data_dir(str(tmp_path / "given")) == tmp_path / "given"
    with pytest.raises(InputFileError, match="--data names .*nowhere, which does not exist"):
        find_data_dir(str(tmp_path / "nowhere"))


@pytest.mark.skipif(not Path("/dev/null").exists(), reason="no /dev/null")
def test_data_that_is_neither_a_folder_nor_a_file(no_installed_data, monkeypatch):
    monkeypatch.setenv("SPECC_DATA", "/dev/null")
    with pytest.raises(InputFileError) as e:
        load_splits(None, (1, 4, 4))
    assert str(e.value) == "SPECC_DATA names /dev/null, which is neither a folder nor a file"
    assert "--data must be one of" in e.value.diagnostics[0].hint
    with pytest.raises(InputFileError, match="--data names /dev/null, which is neither"):
        load_splits("/dev/null", (1, 4, 4))


def test_data_in_the_home_of_an_unknown_user(no_installed_data):
    with pytest.raises(InputFileError) as e:
        find_data_dir("~specc-no-such-user/x")
    assert str(e.value) == "--data names ~specc-no-such-user/x, but this machine has no home folder for ~specc-no-such-user"
    assert "./~specc-no-such-user/x" in e.value.diagnostics[0].hint


def test_dpkg_tells_where_the_package_put_its_files(no_installed_data, tmp_path):
    folder = make_idx_dir(tmp_path / "elsewhere" / "fashion-mnist")
    bin_dir = tmp_path / "empty-bin"
    bin_dir.mkdir()
    dpkg = bin_dir / "dpkg"
    dpkg.write_text(f"#!/bin/sh\necho /.\necho {folder}\necho {folder}/train-images-idx3-ubyte.gz\n")
    dpkg.chmod(0o755)
    assert find_data_dir(None) == folder


def test_normalisation_is_per_channel():
    x = torch.stack([torch.zeros(4, 2, 2), torch.ones(4, 2, 2)], dim=1)  # channel 0 all 0, channel 1 all 1
    x[:2, 0] = 1.0
    mean, std = normalisation(x)
    assert mean == pytest.approx([0.5, 1.0]) and std == pytest.approx([0.5, 1.0])  # a constant channel: std 1


@pytest.mark.slow
@pytest.mark.skipif(not REAL_FASHION_MNIST.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_real_fashion_mnist():
    splits = load_splits(str(REAL_FASHION_MNIST), (1, 28, 28), val_fraction=0.1)
    assert len(splits.train) + len(splits.val) == 60000 and len(splits.val) == 6000
    assert len(splits.test) == 10000 and splits.test.x.shape[1:] == (1, 28, 28)
    assert splits.train.y.unique().tolist() == list(range(10))
    assert 0 <= splits.train.x.min() and splits.train.x.max() <= 1 and splits.train.x.max() > 0.99
    assert splits.train.classes[9] == "Ankle boot"


@pytest.mark.skipif(not REAL_FASHION_MNIST.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_fashion_mnist_is_known_by_its_labels_in_a_folder_of_any_name(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for file in REAL_FASHION_MNIST.glob("*-labels-idx1-ubyte.gz"):
        (folder / file.name).symlink_to(file)
    assert is_fashion_mnist(folder)
    digits = make_idx_dir(tmp_path / "digits")  # the same layout, other labels: digit names
    assert not is_fashion_mnist(digits) and load_splits(str(digits), (1, 4, 4)).train.classes[9] == "9"


def test_an_npz_member_that_is_not_npy_data_is_refused(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "train.npz", "w") as archive:
        archive.writestr("x.npy", b"hello, not npy")
        archive.writestr("y.npy", b"nor this")
    with pytest.raises(InputFileError, match="x is not an array saved by numpy"):
        load_splits(str(tmp_path / "train.npz"), (1, 4, 4))


def test_longdouble_and_half_samples_are_read_as_float32(tmp_path):
    x = np.random.default_rng(0).random((8, 4, 4))
    for dtype in (np.longdouble, np.float16):
        np.savez(tmp_path / "train.npz", x=x.astype(dtype), y=np.arange(8) % 2)
        splits = load_splits(str(tmp_path / "train.npz"), (1, 4, 4), val_fraction=0)
        assert splits.train.x.dtype == torch.float32
        want = np.sort(x.astype(dtype).astype(np.float32).ravel())  # sorted: the split may shuffle the samples
        assert np.array_equal(np.sort(splits.train.x.numpy().ravel()), want)


def test_nan_samples_are_refused(tmp_path):
    x = np.zeros((4, 4, 4), dtype=np.float32)
    x[1, 2, 3] = np.nan
    np.savez(tmp_path / "train.npz", x=x, y=np.arange(4) % 2)
    with pytest.raises(InputFileError, match="x holds NaN or infinite values"):
        load_splits(str(tmp_path / "train.npz"), (1, 4, 4))
