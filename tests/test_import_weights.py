"""The weights `specc import --weights` writes, in the verbs that take weights: `export`, `eval`,
`train --init-from`, and `predict` on the export. A file `specc export` wrote keeps what its
metadata says of inputs and outputs (classes, mean and std) through the import."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

import specc
from specc.runners.export import export
from specc.runners.train import train

from .helpers import invoke, make_npz, quick, write_spec

SPECS = Path(__file__).parent.parent / "specs"
KEPT = ("specc.task", "specc.classes", "specc.mean", "specc.std", "specc.input_shape")


def _kept(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props if p.key in KEPT}


def test_cli_writes_spec_and_weights_that_load(tmp_path):
    original = specc.load(SPECS / "lenet5.cnn")
    export(original, tmp_path / "lenet.onnx")
    out, weights = tmp_path / "lenet.cnn", tmp_path / "lenet.safetensors"
    result = invoke("import", str(tmp_path / "lenet.onnx"), "-o", str(out), "--weights", str(weights))
    assert result.exit_code == 0, result.output
    net = specc.load(out)
    export(net, tmp_path / "again.onnx", weights)  # export loads the weights by name and checks them against torch
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.onnx", "lenet.cnn", "lenet.onnx", "lenet.safetensors"]


def test_a_trained_network_imported_back_evaluates_trains_and_predicts_as_before(tmp_path):
    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data", n_train=48, n_test=12)
    train(spec, quick(data, epochs=1), out=tmp_path / "run")
    best, exported = tmp_path / "run" / "best.safetensors", tmp_path / "tiny.onnx"
    assert invoke("export", str(spec), "--weights", str(best), "-o", str(exported)).exit_code == 0
    back, weights = tmp_path / "back.cnn", tmp_path / "back.safetensors"
    result = invoke("import", str(exported), "-o", str(back), "--weights", str(weights))
    assert result.exit_code == 0 and "and the file's task, classes, mean, std, input_shape" in result.output, result.output

    # The same test figures to the last digit: the same weights, inputs prepared with the training data's mean and std.
    before = invoke("eval", str(spec), "--weights", str(best), "--data", str(data))
    after = invoke("eval", str(back), "--weights", str(weights), "--data", str(data))
    assert after.exit_code == 0 and after.output == before.output and "test accuracy" in after.output

    tuned = invoke("train", str(back), "--init-from", str(weights), "--data", str(data), "--epochs", "1", "--out", str(tmp_path / "tuned"))
    assert tuned.exit_code == 0 and f"initialised 9 of 9 tensors from {weights}" in tuned.output, tuned.output

    # Exported again, the file names its classes and normalises its inputs as the first did: predict answers alike.
    again = tmp_path / "again.onnx"
    assert invoke("export", str(back), "--weights", str(weights), "-o", str(again)).exit_code == 0
    assert _kept(again) == _kept(exported) and json.loads(_kept(again)["specc.classes"]) == ["top", "middle", "bottom"]
    samples = str(data / "test.npz")
    first, second = (json.loads(invoke("predict", str(path), "--npz", samples, "--json").output) for path in (exported, again))
    assert first.pop("model") == str(exported) and second.pop("model") == str(again)
    assert first == second and len(first["predictions"]) == 12


@pytest.mark.parametrize(("key", "value"), [("specc.std", "[0.0]"), ("specc.classes", '["a", "b"]'), ("specc.mean", "[0.1")])
def test_damaged_metadata_in_the_file_is_named_and_nothing_written(key, value, tmp_path):
    path = tmp_path / "lenet.onnx"
    export(specc.load(SPECS / "lenet5.cnn"), path)  # 10 classes, 1 input channel
    model = onnx.load(str(path))
    next(p for p in model.metadata_props if p.key == key).value = value
    onnx.save(model, str(path))
    result = invoke("import", str(path), "-o", str(tmp_path / "lenet.cnn"), "--weights", str(tmp_path / "lenet.safetensors"))
    assert result.exit_code == 2 and key in result.output and "Traceback" not in result.output, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lenet.onnx"]
