"""`specc train` on bad data or bad settings: a clear message and exit code, never a traceback."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from specc.runners.config import TrainConfig, resolve

from .helpers import TINY, invoke, make_npz, write_spec


def write_idx(path, array: np.ndarray) -> None:
    raw = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw))


def assert_clean_failure(result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output


def test_a_truncated_idx_file(tmp_path):
    data = tmp_path / "idx"
    data.mkdir()
    write_idx(data / "train-images-idx3-ubyte.gz", np.zeros((20, 8, 8)))
    write_idx(data / "train-labels-idx1-ubyte.gz", np.zeros(20))
    whole = gzip.decompress((data / "train-images-idx3-ubyte.gz").read_bytes())
    (data / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(whole[:-100]))
    result = invoke("train", str(write_spec(tmp_path)), "--data", str(data))
    assert_clean_failure(result, 2, "train-images-idx3-ubyte.gz should hold", "truncated")


def test_a_folder_with_no_images(tmp_path):
    (tmp_path / "images" / "cats").mkdir(parents=True)
    (tmp_path / "images" / "cats" / "notes.txt").write_text("no pictures here")
    result = invoke("train", str(write_spec(tmp_path)), "--data", str(tmp_path / "images"))
    assert_clean_failure(result, 2, "has no images")


def test_images_of_the_wrong_size(tmp_path):
    for name in ("a", "b"):
        (tmp_path / "images" / name).mkdir(parents=True)
        Image.new("L", (10, 10)).save(tmp_path / "images" / name / "0.png")
    result = invoke("train", str(write_spec(tmp_path)), "--data", str(tmp_path / "images"))
    assert_clean_failure(result, 2, "is 10×10 pixels (height×width) but the spec's input is 8×8")


def test_an_unknown_optimizer_in_the_spec_points_at_it(tmp_path):
    spec = write_spec(tmp_path, TINY.replace("input 1x8x8\n", "input 1x8x8\ntrain {\n  epochs=2 optimizer=adamm\n}\n"))
    result = invoke("train", str(spec), "--data", str(make_npz(tmp_path / "data")))
    assert_clean_failure(
        result,
        2,
        "tiny.cnn:4:22: error: train setting optimizer: unknown optimizer 'adamm'",
        "optimizer=adamm",
        "^~~~~",
        "did you mean 'adam'?",
    )


def test_train_reports_the_sections_mistakes_as_check_does(monkeypatch):
    golden = Path(__file__).parent / "errors" / "train_three_mistakes.cnn"
    monkeypatch.chdir(golden.parent)
    result = invoke("train", golden.name, "--data", "no-such-data")
    assert result.exit_code == 2
    assert result.stderr == golden.with_suffix(".err").read_text(encoding="utf-8")


def test_an_unknown_optimizer_flag(tmp_path):
    result = invoke("train", str(write_spec(tmp_path)), "--optimizer", "lbfgs", "--data", str(make_npz(tmp_path / "data")))
    assert_clean_failure(result, 1, "error: --optimizer lbfgs: unknown optimizer 'lbfgs'", "choose from sgd, momentum, nesterov")


def test_an_unknown_train_setting_and_a_bad_value(tmp_path):
    spec = write_spec(tmp_path, TINY.replace("input 1x8x8\n", "input 1x8x8\ntrain {\n  epochs=2 batch=0\n  schedul=cosine\n}\n"))
    result = invoke("train", str(spec), "--data", str(make_npz(tmp_path / "data")))
    assert_clean_failure(result, 2, "tiny.cnn:5:3: error: unknown train setting 'schedul'", "did you mean 'schedule'?")
    spec.write_text(spec.read_text().replace("  schedul=cosine\n", ""))
    result = invoke("train", str(spec), "--data", str(make_npz(tmp_path / "data")))
    assert_clean_failure(result, 2, "tiny.cnn:4:18: error: train setting batch: must be greater than or equal to 1")


def test_a_network_whose_outputs_do_not_match_the_classes(tmp_path):
    spec = write_spec(tmp_path, TINY.replace("fc 3", "fc 5"))
    result = invoke("train", str(spec), "--data", str(make_npz(tmp_path / "data")))
    assert_clean_failure(result, 2, "the network outputs 5 scores but the data has 3 classes", "make the last layer `fc 3`")


def test_a_loss_that_does_not_fit_the_data_is_refused_before_training(tmp_path):
    spec = write_spec(tmp_path, TINY.replace("input 1x8x8\n", "input 1x8x8\ntrain { loss=mse }\n"))
    result = invoke("train", str(spec), "--data", str(make_npz(tmp_path / "data")), "--out", str(tmp_path / "run"))
    assert_clean_failure(result, 2, "mean squared error needs float targets", "use loss=cross_entropy for classes")
    result = invoke("train", str(write_spec(tmp_path)), "--data", str(tmp_path / "data"), "--loss", "bce")
    assert_clean_failure(result, 2, "the spec ends in softmax", "end the spec in sigmoid")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_an_unknown_loss_is_named_with_the_choices(tmp_path):
    spec = write_spec(tmp_path, TINY.replace("input 1x8x8\n", "input 1x8x8\ntrain { loss=crossentropy }\n"))
    result = invoke("train", str(spec), "--data", str(make_npz(tmp_path / "data")))
    assert_clean_failure(result, 2, "tiny.cnn:3:14: error: train setting loss: unknown loss 'crossentropy'", "cross_entropy")
    result = invoke("train", str(write_spec(tmp_path)), "--data", str(tmp_path / "data"), "--loss", "hinge")
    assert_clean_failure(result, 1, "--loss hinge: unknown loss 'hinge'", "choose from auto, cross_entropy, bce, mse")


@pytest.mark.parametrize(
    ("y", "fragment"),
    [
        (np.full(24, np.nan, dtype=np.float32), "y holds NaN or infinite targets"),
        (np.zeros(23, dtype=np.int64), "y must hold the targets of the 24 samples"),
        (np.array(["a"] * 24), "y must hold the targets of the 24 samples"),
    ],
)
def test_npz_targets_that_cannot_be_trained_on(tmp_path, y, fragment):
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "train.npz", x=np.zeros((24, 8, 8), np.uint8), y=y)
    result = invoke("train", str(write_spec(tmp_path)), "--data", str(tmp_path / "data"))
    assert_clean_failure(result, 2, fragment)


def test_neither_spec_nor_resume():
    assert_clean_failure(invoke("train"), 1, "give a spec to train, or --resume RUN_DIR")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"augment": "flip, translate"}, ["flip", "translate"]),
        ({"augment": "none"}, []),
        ({"epochs": 4}, []),
    ],
)
def test_augment_lists_are_read_from_commas(flags, expected):
    assert resolve({}, flags).augment == expected


def test_optimiser_defaults_follow_the_optimiser():
    assert TrainConfig(optimizer="sgd").learning_rate == 0.1 and TrainConfig(optimizer="adam").learning_rate == 1e-3
    assert TrainConfig(optimizer="adamw").decay == 0.01 and TrainConfig(optimizer="adam").decay == 0.0
    assert resolve({"optimizer": "sgd", "lr": 0.3}, {"lr": 0.2}).learning_rate == 0.2


# --- settings the data or the network cannot take ------------------------------------

FLAT_BATCHNORM = "network flat\ninput 1x8x8\nflatten\nfc 16\nbatchnorm\nrelu\nfc 3\n"


def test_a_batch_of_one_is_refused_where_a_batchnorm_sees_one_value_per_channel(tmp_path):
    spec, data = write_spec(tmp_path, FLAT_BATCHNORM), make_npz(tmp_path / "data", n_train=48, n_test=12)
    result = invoke("train", str(spec), "--data", str(data), "--batch-size", "1", "--out", str(tmp_path / "run"))
    assert_clean_failure(result, 1, "batchnorm bn1 (line 5) sees one value per channel", "use --batch-size 2 or more")
    assert not (tmp_path / "run").exists()
    result = invoke("bench", str(spec), "--batch", "1")
    assert_clean_failure(result, 1, "cannot train on batches of 1", "use --batch 2 or more")


def test_augmenting_a_plain_vector_is_refused(tmp_path):
    spec = write_spec(tmp_path, "network v\ninput 64\nfc 3\n")
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    np.savez(data / "train.npz", x=rng.integers(0, 255, (30, 64)).astype(np.uint8), y=np.arange(30) % 3)
    result = invoke("train", str(spec), "--data", str(data), "--augment", "crop")
    assert_clean_failure(result, 1, "not a plain vector of 64", "--augment none")


def test_a_seed_beyond_64_bits_is_a_setting_error(tmp_path):
    result = invoke("train", str(write_spec(tmp_path)), "--seed", str(2**64), "--data", str(make_npz(tmp_path / "data")))
    assert_clean_failure(result, 1, f"--seed {2**64}: must be less than 9223372036854775808")


# --- a damaged run directory ---------------------------------------------------------


@pytest.fixture
def finished_run(tmp_path):
    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data", n_train=48, n_test=12)
    run = tmp_path / "run"
    invoke("train", str(spec), "--data", str(data), "--epochs", "1", "--batch-size", "8", "--out", str(run))
    return run


def test_resume_refuses_a_config_that_is_not_specc_json(finished_run):
    (finished_run / "config.json").write_text("[1")
    assert_clean_failure(invoke("train", "--resume", str(finished_run)), 2, "config.json is not the JSON specc wrote", "--init-from")


def test_resume_refuses_a_state_file_of_another_run(finished_run, tmp_path):
    spec = write_spec(tmp_path, TINY.replace("K=4", "K=6"), "wider.cnn")
    other = tmp_path / "other"
    invoke("train", str(spec), "--data", str(tmp_path / "data"), "--epochs", "1", "--batch-size", "8", "--out", str(other))
    (finished_run / "last.state.safetensors").write_bytes((other / "last.state.safetensors").read_bytes())
    assert_clean_failure(invoke("train", "--resume", str(finished_run)), 2, "last.state.safetensors does not fit this run")


def test_resume_refuses_data_that_changes_the_batches_of_an_epoch(finished_run, tmp_path):
    bigger = make_npz(tmp_path / "bigger", n_train=96, n_test=12)
    result = invoke("train", "--resume", str(finished_run), "--data", str(bigger))
    assert_clean_failure(result, 1, "trained on 5 batches an epoch, but its data now gives 10", "resume with the data it was trained on")
