"""`specc eval`: test accuracy, loss and confusion matrix of a spec with a run's weights."""

from __future__ import annotations

import json

import numpy as np
import pytest

from specc.runners.checkpoint import load as load_checkpoint
from specc.runners.train import train

from .helpers import TINY, invoke, make_npz, quick, write_spec


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
    wrong = "other.cnn: wrong shape: conv1.weight (4×1×3×3 in the file, 6×1×3×3 here), conv1.bias (4 in the file, 6 here)"
    assert result.exit_code == 2 and "does not fit" in result.output and wrong in result.output


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


# ---- damaged weights and hostile names: a clear error, names printed as text -----------------------


def trained_run(tmp_path, **npz_classes):
    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data", n_train=48, n_test=12)
    if npz_classes:
        for split in ("train", "test"):
            with np.load(data / f"{split}.npz") as arrays:
                np.savez(data / f"{split}.npz", x=arrays["x"], y=arrays["y"], classes=np.array(npz_classes["classes"]))
    train(spec, quick(data, epochs=1), out=tmp_path / "run")
    return spec, data, tmp_path / "run" / "best.safetensors"


def rewrite(weights, target, change_tensors=None, **meta):
    from safetensors.torch import save_file

    tensors, metadata = load_checkpoint(weights)
    if change_tensors:
        change_tensors(tensors)
    save_file(tensors, target, metadata | {f"specc.{k}": v for k, v in meta.items()})
    return target


def test_nan_weights_are_a_damaged_file_for_eval_and_export(tmp_path):
    spec, data, best = trained_run(tmp_path)
    nan = rewrite(best, tmp_path / "nan.safetensors", lambda t: t["conv1.weight"].fill_(float("nan")))
    result = invoke("eval", str(spec), "--weights", str(nan), "--data", str(data))
    assert result.exit_code == 2 and "holds NaN or infinite weights (conv1.weight)" in result.output
    result = invoke("export", str(spec), "--weights", str(nan), "-o", str(tmp_path / "net.onnx"))
    assert result.exit_code == 2 and "holds NaN or infinite weights" in result.output and "onnxruntime" not in result.output
    assert not (tmp_path / "net.onnx").exists()


def test_damaged_weights_metadata_is_refused_by_eval_and_export(tmp_path):
    spec, data, best = trained_run(tmp_path)
    for meta, message in [
        ({"mean": '["x"]'}, "specc.mean must be a list of finite numbers"),
        ({"mean": "[0.1, 0.2]"}, "specc.mean must be one number per input channel (1), but it has 2"),
        ({"input_shape": "5"}, "specc.input_shape must be a list of 1 to 4 sizes"),
    ]:
        damaged = rewrite(best, tmp_path / "damaged.safetensors", **meta)
        result = invoke("eval", str(spec), "--weights", str(damaged), "--data", str(data))
        assert result.exit_code == 2 and message in result.output, result.output
        result = invoke("export", str(spec), "--weights", str(damaged), "-o", str(tmp_path / "net.onnx"))
        assert result.exit_code == 2 and message in result.output, result.output
    short = rewrite(best, tmp_path / "short.safetensors", classes='["a"]')
    result = invoke("export", str(spec), "--weights", str(short), "-o", str(tmp_path / "net.onnx"))
    assert result.exit_code == 2 and "names 1 classes, but the network has 3 outputs" in result.output
    assert not (tmp_path / "net.onnx").exists()


def test_class_names_with_markup_and_escapes_print_as_text(tmp_path):
    names = ["[/x]", "[dog]", "\x1b[2Jclear"]
    spec, data, best = trained_run(tmp_path, classes=names)
    result = invoke("eval", str(spec), "--weights", str(best), "--data", str(data))
    assert result.exit_code == 0, result.output
    assert "0 [/x]" in result.output and "1 [dog]" in result.output and "2 \\x1b[2Jclear" in result.output
    assert "\x1b" not in result.output


def test_eval_and_test_json_agree_whatever_precision_training_ran_in(tmp_path):
    """Training in bf16 tests its best weights in fp32, as eval does by default: the same weights give the same figures."""
    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data", n_train=96, n_test=60)
    train(spec, quick(data, precision="bf16"), out=tmp_path / "run")
    record = json.loads((tmp_path / "run" / "test.json").read_text())
    assert record["precision"] == "fp32"
    best = str(tmp_path / "run" / "best.safetensors")
    result = invoke("eval", str(spec), "--weights", best, "--data", str(data))
    assert f"test accuracy {record['accuracy']:.4f} ({round(record['accuracy'] * 60)}/60), loss {record['loss']:.4f}" in result.output
    from specc.runners.evaluate import evaluate_weights

    fp32, _ = evaluate_weights(spec, best, str(data))
    bf16, _ = evaluate_weights(spec, best, str(data), precision="bf16")
    assert fp32.loss == pytest.approx(record["loss"], rel=1e-6) and bf16.loss != fp32.loss  # the flag does change the arithmetic
    assert invoke("eval", str(spec), "--weights", best, "--data", str(data), "--precision", "fp64").exit_code == 1
