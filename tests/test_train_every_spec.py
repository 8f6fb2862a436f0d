"""Every spec in specs/ (and its sub-folders) trains one epoch on synthetic data of its shape.

The data follows what the spec ends in: class labels for scores, two classes for one sigmoid, 0/1 per
label for several sigmoids, integer masks for a map. A handful of samples, batch 2, one epoch, fp32
on the CPU: the point is that each spec's loss, metrics and run files work, not that it learns.
Three small specs of other shapes (a map out, several labels, values) run through the command line.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import specc
from specc.runners.train import train

from .helpers import invoke, synthetic

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(ROOT.glob("specs/**/*.cnn"))
# One training step at 224×224 takes seconds on a shared CPU: these run with the slow tests.
SLOW = {"resnet18", "resnet34", "resnet50"}


def one_epoch(data: Path) -> dict:
    return {"data": str(data), "epochs": 1, "batch_size": 2, "val_fraction": 0.25, "augment": "none", "precision": "fp32", "device": "cpu"}


def params(paths) -> list:
    return [
        pytest.param(path, id=str(path.relative_to(ROOT / "specs")), marks=[pytest.mark.slow] if path.stem in SLOW else [])
        for path in paths
    ]


def test_the_zoo_is_found():
    assert len(SPECS) >= 12 and ROOT / "specs" / "dna_cnn1d.cnn" in SPECS


@pytest.mark.parametrize("spec", params(SPECS))
def test_every_spec_trains_one_epoch_on_data_of_its_shape(tmp_path, spec):
    net = specc.load(spec)
    net.check()
    result = train(spec, one_epoch(synthetic(net, tmp_path / "data")), out=tmp_path / "run")
    assert result.epochs_done == 1 and result.test is not None and result.test.count == 2
    task = result.test.task
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text())
    assert {"train_loss", f"train_{task.metric}", "val_loss", f"val_{task.metric}"} <= set(row)
    assert np.isfinite(row["train_loss"]) and np.isfinite(row["val_loss"])
    record = json.loads((tmp_path / "run" / "test.json").read_text())
    assert record["loss_function"] == task.loss and np.isfinite(record["loss"])
    assert (tmp_path / "run" / "curves.png").stat().st_size > 0
    assert task.kind == expected_kind(net)


def expected_kind(net) -> str:
    out, last = tuple(net.network.output_shape), net.network.final_layer
    if len(out) > 1:
        return "pixels"
    if last is not None and last.kind.name == "sigmoid":
        return "binary" if out == (1,) else "multilabel"
    return "classes"


def checked(path: Path):
    net = specc.load(path)
    net.check()
    return net


def test_the_zoo_has_each_ending_it_claims():
    assert expected_kind(checked(ROOT / "specs" / "dna_cnn1d.cnn")) == "binary"
    assert expected_kind(checked(ROOT / "specs" / "fashion.cnn")) == "classes"


SEGMENT = "network seg\ninput 1x16x16\nconv K=8 F=3 P=1\nrelu\nconv K=3 F=3 P=1\n"
FOREGROUND = "network fg\ninput 1x16x16\nconv K=8 F=3 P=1\nrelu\nconv K=1 F=3 P=1\nsigmoid\n"
LABELS = "network tags\ninput 1x8x8\nconv K=4 F=3 P=1\nrelu\nflatten\nfc 5\nsigmoid\n"
VALUES = "network values\ninput 1x8x8\nconv K=4 F=3 P=1\nrelu\nflatten\nfc 2\n"


@pytest.mark.parametrize(
    ("text", "float_targets", "header", "metric", "test_line"),
    [
        (SEGMENT, False, "loss: per-pixel cross-entropy over 3 classes", "iou", "test mean IoU"),
        (FOREGROUND, False, "loss: per-pixel binary cross-entropy (foreground or not) (the final sigmoid", "iou", "test mean IoU"),
        (LABELS, False, "loss: binary cross-entropy over 5 labels (the final sigmoid folded into it); metric F1", "f1", "test F1"),
        (VALUES, True, "loss: mean squared error over 2 values; metric MAE", "mae", "test MAE"),
    ],
    ids=["map", "foreground", "labels", "values"],
)
def test_maps_labels_and_values_train_from_the_command_line(tmp_path, text, float_targets, header, metric, test_line):
    spec = tmp_path / "net.cnn"
    spec.write_text(text)
    net = specc.load(spec)
    net.check()
    data = synthetic(net, tmp_path / "data", n_train=8, n_test=4, float_targets=float_targets)
    args = ["--data", str(data), "--epochs", "2", "--batch", "4", "--val-fraction", "0.25", "--precision", "fp32"]
    args += ["-o", str(tmp_path / "run")]
    result = invoke("train", str(spec), *args, *(["--augment", "flip,crop"] if text in (SEGMENT, FOREGROUND) else []))
    assert result.exit_code == 0, result.output
    assert header in result.output and test_line in result.output and "train loss" in result.output
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(row[f"val_{metric}"] is not None for row in rows)
    record = json.loads((tmp_path / "run" / "test.json").read_text())
    assert record[{"iou": "mean_iou"}.get(metric, metric)] is not None
    evaluated = invoke("eval", str(spec), "--weights", str(tmp_path / "run" / "best.safetensors"), "--data", str(data))
    assert evaluated.exit_code == 0 and test_line in evaluated.output, evaluated.output


def test_a_segmentation_mask_of_another_size_is_refused(tmp_path):
    spec = tmp_path / "net.cnn"
    spec.write_text(SEGMENT)
    data = tmp_path / "data"
    data.mkdir()
    np.savez(data / "train.npz", x=np.zeros((8, 1, 16, 16), np.float32), y=np.zeros((8, 8, 8), np.int64))
    result = invoke("train", str(spec), "--data", str(data), "--epochs", "1", "-o", str(tmp_path / "run"))
    assert result.exit_code == 2 and "the data's masks are 8×8" in result.output and "hint:" in result.output
    assert "Traceback" not in result.output
