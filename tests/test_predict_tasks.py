"""specc predict reads the output as the network was trained: classes, one yes/no, labels, values, maps.

Each case trains a tiny spec for one epoch on synthetic data through the command line, exports its
best weights and predicts the test samples; the numbers are checked against the torch module run on
the same samples, with the activation the task implies applied here by hand (a sigmoid of the logit,
a softmax of the scores, the argmax of a map).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

import specc
from specc.runners.checkpoint import load as load_checkpoint

from .helpers import invoke, synthetic

HEAD = "input 1x8x8\nconv K=4 F=3 P=1\nrelu\n"
SPECS = {
    "classes": ("classes", HEAD + "flatten\nfc 3\n", False),
    "binary_sigmoid": ("binary", HEAD + "flatten\nfc 1\nsigmoid\n", False),  # as specs/dna_cnn1d.cnn ends
    "binary_score": ("binary", HEAD + "flatten\nfc 1\n", False),
    "multilabel": ("multilabel", HEAD + "flatten\nfc 3\nsigmoid\n", False),
    "regression": ("regression", HEAD + "flatten\nfc 2\n", True),
    "segmentation": ("segmentation", HEAD + "conv K=3 F=3 P=1\n", False),
    "foreground": ("segmentation", HEAD + "conv K=1 F=3 P=1\nsigmoid\n", False),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each case trained once for the whole module: `runs(case)`."""
    done: dict[str, tuple] = {}

    def run(case: str):
        if case not in done:
            done[case] = trained(tmp_path_factory.mktemp(case), case)
        return done[case]

    return run


def trained(tmp_path: Path, case: str):
    """Train SPECS[case] one epoch from the command line and export it: (the ONNX file, the torch module's
    output on the test samples, the test .npz, the weights' metadata)."""
    _, body, float_targets = SPECS[case]
    spec = tmp_path / f"{case}.cnn"
    spec.write_text(f"network {case}\n{body}")
    net = specc.load(spec)
    net.check()
    data = synthetic(net, tmp_path / "data", n_train=8, n_test=4, float_targets=float_targets)
    run = tmp_path / "run"
    args = ["--data", str(data), "--epochs", "1", "--batch", "4", "--val-fraction", "0.25", "--precision", "fp32", "-o", str(run)]
    result = invoke("train", str(spec), *args)
    assert result.exit_code == 0, result.output
    exported = invoke("export", str(spec), "--weights", str(run / "best.safetensors"), "-o", str(tmp_path / "net.onnx"))
    assert exported.exit_code == 0, exported.output
    tensors, meta = load_checkpoint(run / "best.safetensors")
    model = net.to_torch().eval()
    model.load_state_dict(tensors)
    mean, std = (torch.tensor(json.loads(meta[f"specc.{key}"])).reshape(-1, 1, 1) for key in ("mean", "std"))
    x = torch.from_numpy(np.load(data / "test.npz")["x"])
    with torch.no_grad():
        out = model((x - mean) / std)
    return tmp_path / "net.onnx", out, data / "test.npz", meta


def predicted(model: Path, npz: Path, *more: str) -> dict:
    result = invoke("predict", str(model), "--npz", str(npz), "--json", "--provider", "cpu", *more)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def text(model: Path, npz: Path) -> str:
    result = invoke("predict", str(model), "--npz", str(npz), "--provider", "cpu")
    assert result.exit_code == 0, result.output
    return result.output


def without_final(out: torch.Tensor, case: str) -> torch.Tensor:
    """The logits before a final sigmoid (the module's own output is the sigmoid of them)."""
    return torch.logit(out.double()) if SPECS[case][1].endswith("sigmoid\n") else out.double()


@pytest.mark.parametrize("case", list(SPECS))
def test_the_task_is_recorded_by_train_and_export(runs, case):
    model, _, _, meta = runs(case)
    onnx_meta = {p.key: p.value for p in onnx.load(model).metadata_props}
    assert meta["specc.task"] == onnx_meta["specc.task"] == SPECS[case][0]
    final = SPECS[case][1].endswith(("sigmoid\n", "softmax\n"))
    want = "values" if case == "regression" else "probabilities" if final else "logits"
    assert onnx_meta["specc.output"] == want


@pytest.mark.parametrize("case", ["binary_sigmoid", "binary_score"])
def test_one_output_is_the_probability_of_the_positive_class(runs, case):
    model, out, npz, _ = runs(case)
    want = torch.sigmoid(without_final(out, case)).reshape(-1).numpy()
    answer = predicted(model, npz)
    got = [p["probability"] for p in answer["predictions"]]
    assert answer["task"] == "binary" and all(p["class"] == "class1" for p in answer["predictions"])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert max(got) < 0.999 and len(set(got)) == len(got)  # a softmax over one score would give 1.000 each
    lines = text(model, npz).splitlines()
    assert lines[1].split() == ["class1", f"{want[0]:.3f}"]


def test_classes_are_the_top_softmax_probabilities(runs):
    model, out, npz, _ = runs("classes")
    want = torch.softmax(out.double(), 1).numpy()
    answer = predicted(model, npz, "--top", "2")
    for row, prediction in zip(want, answer["predictions"], strict=True):
        best = np.argsort(-row, kind="stable")[:2]
        assert [t["class"] for t in prediction["top"]] == [f"class{i}" for i in best]
        np.testing.assert_allclose([t["probability"] for t in prediction["top"]], row[best], atol=1e-5)
        assert "task" not in prediction  # the JSON of a classifier is as it was


def test_each_label_has_its_own_probability(runs):
    model, out, npz, _ = runs("multilabel")
    want = torch.sigmoid(without_final(out, "multilabel")).numpy()
    answer = predicted(model, npz)
    for row, prediction in zip(want, answer["predictions"], strict=True):
        assert [label["label"] for label in prediction["labels"]] == ["0", "1", "2"]
        np.testing.assert_allclose([label["probability"] for label in prediction["labels"]], row, atol=1e-5)
        assert [label["on"] for label in prediction["labels"]] == list(row > 0.5)
    printed = text(model, npz).splitlines()[1:4]
    assert [line.split()[1] for line in printed] == [f"{p:.3f}" for p in want[0]]
    assert [line.endswith("on") for line in printed] == list(want[0] > 0.5)


def test_regression_gives_the_values_as_they_are(runs):
    model, out, npz, _ = runs("regression")
    answer = predicted(model, npz)
    got = [list(p["values"].values()) for p in answer["predictions"]]
    np.testing.assert_allclose(got, out.numpy(), rtol=0, atol=1e-5)
    printed = text(model, npz).splitlines()
    assert printed[1].split() == ["0", f"{out[0, 0].item():.6g}"]


@pytest.mark.parametrize("case", ["segmentation", "foreground"])
def test_a_map_is_counted_per_class_and_written_as_masks(runs, tmp_path, case):
    model, out, npz, _ = runs(case)
    masks = (out[:, 0] > 0.5).long() if case == "foreground" else out.argmax(1)
    answer = predicted(model, npz, "--out", str(tmp_path / "masks"))
    for n, (mask, prediction) in enumerate(zip(masks, answer["predictions"], strict=True)):
        counts = torch.bincount(mask.flatten(), minlength=out.shape[1] if case == "segmentation" else 2).tolist()
        assert list(prediction["pixels"].values()) == counts and (prediction["height"], prediction["width"]) == (8, 8)
        written = np.asarray(Image.open(prediction["mask"]))
        assert prediction["mask"] == str(tmp_path / "masks" / f"{n:04d}.mask.png")
        np.testing.assert_array_equal(written, mask.numpy())
    assert text(model, npz).splitlines()[1] == "  8×8 pixels"


def test_an_onnx_file_without_a_task_is_a_classifier_as_before(runs, tmp_path):
    model, out, npz, _ = runs("classes")
    proto = onnx.load(model)
    kept = [p for p in proto.metadata_props if p.key != "specc.task"]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    onnx.save(proto, tmp_path / "old.onnx")
    answer = predicted(tmp_path / "old.onnx", npz, "--top", "3")
    want = torch.softmax(out.double(), 1).numpy()
    np.testing.assert_allclose([[t["probability"] for t in p["top"]] for p in answer["predictions"]], -np.sort(-want, 1), atol=1e-5)


def test_masks_are_only_for_maps_and_a_bad_task_is_refused(runs, tmp_path):
    model, _, npz, _ = runs("binary_sigmoid")
    result = invoke("predict", str(model), "--npz", str(npz), "--out", str(tmp_path / "masks"))
    assert result.exit_code == 2 and "--out writes segmentation masks" in result.output
    proto = onnx.load(model)
    next(p for p in proto.metadata_props if p.key == "specc.task").value = "poetry"
    onnx.save(proto, tmp_path / "bad.onnx")
    result = invoke("predict", str(tmp_path / "bad.onnx"), "--npz", str(npz))
    assert result.exit_code == 2 and "specc.task must be one of classes, binary" in result.output


# Without a run's weights the task is read off the spec's ending, as `train` would choose it for class labels.
FROM_THE_SPEC = {case: (task, "probabilities" if body.endswith("sigmoid\n") else "logits") for case, (task, body, _) in SPECS.items()}
FROM_THE_SPEC["regression"] = ("classes", "logits")  # fc 2: two class scores, until a run says it regressed values


@pytest.mark.parametrize("case", list(SPECS))
def test_random_weights_take_the_task_of_the_spec(tmp_path, case):
    spec = tmp_path / "n.cnn"
    spec.write_text(f"network {case}\n{SPECS[case][1]}")
    result = specc.export(spec, tmp_path / "n.onnx")
    assert (result.metadata["specc.task"], result.metadata["specc.output"]) == FROM_THE_SPEC[case]
    names = json.loads(result.metadata["specc.classes"])
    assert len(names) == {"classes": 3, "multilabel": 3, "segmentation": 3}.get(case, 2)  # two for one score or one channel
    prediction = specc.Predictor(tmp_path / "n.onnx", provider="cpu").predict(np.zeros((1, 1, 8, 8), np.float32))[0]
    assert prediction.task == FROM_THE_SPEC[case][0]
