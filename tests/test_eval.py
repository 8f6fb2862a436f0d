"""`specc eval`: test accuracy, loss and confusion matrix of a spec with a run's weights."""

from __future__ import annotations

import json

import numpy as np

from specc.runners.train import train

from .test_train import TINY, invoke, make_npz, quick, write_spec


def test_eval_reports_what_training_reported(tmp_path):
    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data")
    train(spec, quick(data), out=tmp_path / "run")
    result = invoke("eval", str(spec), "--weights", str(tmp_path / "run" / "best.safetensors"), "--data", str(data))
    assert result.exit_code == 0, result.output
    accuracy = json.loads((tmp_path / "run" / "test.json").read_text())["accuracy"]
    assert f"test accuracy {accuracy:.4f} ({round(accuracy * 60)}/60), loss" in result.output
    assert "confusion matrix" in result.output and "0 top" in result.output and "recall" in result.output


def test_weights_of_another_spec_are_refused(tmp_path):
    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data", n_train=48, n_test=12)
    train(spec, quick(data, epochs=1), out=tmp_path / "run")
    other = write_spec(tmp_path, TINY.replace("K=4", "K=6"), "other.cnn")
    result = invoke("eval", str(other), "--weights", str(tmp_path / "run" / "best.safetensors"), "--data", str(data))
    assert result.exit_code == 2 and "does not hold this spec's weights (of another shape: bn1.bias, bn1.running_mean" in result.output


def test_data_without_a_test_split(tmp_path):
    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data", n_train=48, n_test=12)
    train(spec, quick(data, epochs=1), out=tmp_path / "run")
    (data / "test.npz").unlink()
    result = invoke("eval", str(spec), "--weights", str(tmp_path / "run" / "best.safetensors"), "--data", str(data))
    assert result.exit_code == 2 and "has no test split to evaluate on" in result.output


def test_a_missing_weights_file(tmp_path):
    result = invoke("eval", str(write_spec(tmp_path)), "--weights", str(tmp_path / "none.safetensors"))
    assert result.exit_code == 2 and "no such checkpoint file" in result.output and "Traceback" not in result.output


def test_confusion_rows_are_true_classes(tmp_path):
    """All test samples relabelled to class 0: every count lands in row 0."""
    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data", n_train=48, n_test=12)
    train(spec, quick(data, epochs=1), out=tmp_path / "run")
    with np.load(data / "test.npz") as arrays:
        np.savez(data / "test.npz", x=arrays["x"], y=np.zeros(12, dtype=np.int64), classes=arrays["classes"])
    from specc.runners.evaluate import evaluate_weights

    result, classes = evaluate_weights(spec, tmp_path / "run" / "best.safetensors", str(data))
    assert sum(result.confusion[0]) == 12 and sum(map(sum, result.confusion[1:])) == 0 and classes == ["top", "middle", "bottom"]
