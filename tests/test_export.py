"""ONNX export: every spec in specs/ exports, passes onnx.checker and agrees with torch; weights and metadata round-trip."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

import specc
from specc.backends import onnx as onnx_backend
from specc.cli import main
from specc.errors import EXIT_BAD_SPEC, EXIT_FAILURE, SpeccError
from specc.runners import metadata as specc_metadata

from .helpers import TINY_NAMED, class_names, trained_weights

ROOT = Path(__file__).resolve().parent.parent
# torchvision's models are exported in tests/test_zoo.py, against torchvision's own outputs: not twice.
SPECS = sorted(p for p in (ROOT / "specs").rglob("*.cnn") if p.parent.name != "torchvision")
HEAVY_MACS = 100_000_000  # the resnets: each export takes seconds, and their checks more


def spec_param(path: Path):
    heavy = specc.load(path).check().total_macs > HEAVY_MACS
    return pytest.param(path, id=path.stem, marks=[pytest.mark.slow] if heavy else [])


def run_onnx(path: Path, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def metadata(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(path).metadata_props}


def cli(*args: str):
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a bug in specc, not a user mistake
    return result


# --- every spec -----------------------------------------------------------------


@pytest.mark.parametrize("path", [spec_param(p) for p in SPECS])
def test_every_spec_exports_matches_torch_and_keeps_its_names(path: Path, tmp_path: Path):
    net = specc.load(path)
    model = trained_weights(net, tmp_path / "w.safetensors")
    result = specc.export(net, tmp_path / "net.onnx", weights=tmp_path / "w.safetensors")

    assert set(result.max_abs_diff) == {1, 5} and max(result.max_abs_diff.values()) <= 1e-4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.onnx", "w.safetensors"]  # weights inside, nothing beside
    proto = onnx.load(result.path)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a named, dynamic batch axis
    with torch.no_grad():
        for batch in (1, 5):  # checked here too, independently of export's own check
            x = torch.randn(batch, *net.input_shape)
            np.testing.assert_allclose(run_onnx(result.path, x), model(x).numpy(), rtol=0, atol=1e-4)

    meta = metadata(result.path)
    assert meta["specc.spec"] == path.read_text()
    assert json.loads(meta["specc.input_shape"]) == list(net.input_shape)
    assert json.loads(meta["specc.classes"])[-1] == f"class {class_names(net) - 1}"
    assert meta["specc.task"] in specc_metadata.TASKS and (path.stem != "dna_cnn1d" or meta["specc.task"] == "binary")
    assert json.loads(meta["specc.mean"]) == [0.25] * net.input_shape[0]
    assert json.loads(meta["specc.std"]) == [0.5] * net.input_shape[0]
    assert meta["specc.epoch"] == "7" and meta["specc.version"] == specc.__version__
    assert meta["specc.weights"] == "w.safetensors"

    named = {part for node in proto.graph.node for part in node.name.split("/")[0].split("+")}
    weighted = [layer.name for layer in net.network.layers() if layer.kind.name in ("conv", "fc")]
    assert weighted and set(weighted) <= named  # every conv and fc shows as a node named after it


# --- one small network, every way ------------------------------------------------


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    spec = tmp_path / "tiny.cnn"
    spec.write_text(TINY_NAMED)
    return spec


def test_without_weights_says_so_and_uses_neutral_metadata(tiny: Path, tmp_path: Path):
    result = cli("export", str(tiny), "-o", str(tmp_path / "tiny.onnx"))
    assert result.exit_code == 0, result.stderr
    assert "random initial weights" in result.stderr
    assert "largest |difference|" in result.stdout
    meta = metadata(tmp_path / "tiny.onnx")
    assert json.loads(meta["specc.classes"]) == ["0", "1", "2"]
    assert json.loads(meta["specc.mean"]) == [0.0] and json.loads(meta["specc.std"]) == [1.0]
    assert meta["specc.weights"] == "random" and meta["specc.network"] == "tiny"


def test_a_spec_ending_in_softmax_says_its_output_is_probabilities(tiny: Path, tmp_path: Path):
    lenet = specc.export(ROOT / "specs" / "lenet5.cnn", tmp_path / "lenet.onnx")
    probabilities = specc.export(tiny, tmp_path / "tiny.onnx")
    assert lenet.metadata["specc.output"] == "logits"
    assert probabilities.metadata["specc.output"] == "probabilities"
    assert [o.name for o in onnx.load(probabilities.path).graph.output] == ["probabilities"]


def test_batchnorm_folded_into_a_conv_is_named_after_both(tiny: Path, tmp_path: Path):
    proto = onnx.load(specc.export(tiny, tmp_path / "tiny.onnx").path)
    names = [node.name for node in proto.graph.node]
    assert "features.0+features.1/Conv" in names
    assert "head/Gemm" in names


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p, net: None, "no such checkpoint file"),
        (lambda p, net: p.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json"), "not a complete safetensors file"),
        (lambda p, net: save_file({"head.weight": torch.zeros(3, 5)}, p), "wrong shape: head.weight (3×5 in the file, 3×100 here)"),
        (lambda p, net: save_file({"other.weight": torch.zeros(1)}, p), "not in the network: other.weight"),
    ],
    ids=["missing", "corrupt", "wrong-shape", "foreign"],
)
def test_bad_weights_are_named_with_exit_2(tiny: Path, tmp_path: Path, make, message: str):
    weights = tmp_path / "w.safetensors"
    make(weights, specc.load(tiny))
    result = cli("export", str(tiny), "--weights", str(weights), "-o", str(tmp_path / "tiny.onnx"))
    assert result.exit_code == EXIT_BAD_SPEC
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "tiny.onnx").exists()


def test_weights_metadata_that_does_not_fit_the_spec_is_refused(tiny: Path, tmp_path: Path):
    trained_weights(specc.load(tiny), tmp_path / "w.safetensors", **{"specc.classes": json.dumps(["a", "b"])})
    result = cli("export", str(tiny), "--weights", str(tmp_path / "w.safetensors"), "-o", str(tmp_path / "tiny.onnx"))
    assert result.exit_code == EXIT_BAD_SPEC
    assert "names 2 classes, but the network has 3 outputs" in result.stderr


def test_disagreement_with_torch_fails_and_writes_nothing(tiny: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(onnx_backend, "TOLERANCE", -1.0)
    with pytest.raises(SpeccError, match="onnxruntime and torch disagree by up to .* where torch's outputs reach") as caught:
        specc.export(tiny, tmp_path / "tiny.onnx")
    assert caught.value.exit_code == EXIT_FAILURE
    assert "(tolerance -1 · max(1, " in str(caught.value)
    assert list(tmp_path.iterdir()) == [tiny]


def test_the_tolerance_is_absolute_up_to_outputs_of_one_and_relative_beyond():
    assert onnx_backend.tolerance(0.0) == onnx_backend.tolerance(0.5) == onnx_backend.tolerance(1.0) == 1e-4
    assert onnx_backend.tolerance(300.0) == pytest.approx(0.03)


def test_a_correct_export_with_outputs_in_the_hundred_thousands_is_written(tmp_path: Path):
    """float32 rounding grows with the values: an absolute 1e-4 refused such an export (an untrained ResNet-50's logits)."""
    spec = tmp_path / "big.cnn"
    spec.write_text("network big\ninput 3x16x16\nconv K=32 F=3\nrelu\nconv K=32 F=3\nrelu\nflatten\nfc 10\n")
    net = specc.load(spec)
    torch.manual_seed(0)
    model = net.to_torch()
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.copy_(torch.randn_like(tensor) * 3)
    save_file({name: t.contiguous() for name, t in model.state_dict().items()}, tmp_path / "w.safetensors")
    result = cli("export", str(spec), "--weights", str(tmp_path / "w.safetensors"), "-o", str(tmp_path / "big.onnx"))
    assert result.exit_code == 0, result.output
    assert "(tolerance " in result.stdout and ", 0.0001 · max(1, largest |output|))" in result.stdout
    exported = specc.export(net, tmp_path / "again.onnx", weights=tmp_path / "w.safetensors")
    x = torch.randn(5, *net.input_shape)
    with torch.no_grad():
        want = model.eval()(x).numpy()
    got = run_onnx(exported.path, x)
    assert 1e-4 < float(np.max(np.abs(got - want))) <= 1e-4 * float(np.max(np.abs(want)))  # over 1e-4, yet within 1e-4 relative
    assert 1e-4 < max(exported.max_abs_diff.values()) <= exported.tolerance


def test_an_opset_the_exporter_cannot_write_is_a_clear_error(tiny: Path, tmp_path: Path):
    result = cli("export", str(tiny), "--opset", "9", "-o", str(tmp_path / "tiny.onnx"))
    assert result.exit_code == EXIT_FAILURE
    assert "cannot write tiny in opset 9" in result.stderr and "Traceback" not in result.stderr
    assert "hint: use --opset 18, or an opset nearer to it" in result.stderr


def test_another_opset_is_written_as_asked(tiny: Path, tmp_path: Path):
    proto = onnx.load(specc.export(tiny, tmp_path / "tiny.onnx", opset=20).path)
    assert [o.version for o in proto.opset_import if o.domain == ""] == [20]


def test_import_specc_loads_neither_torch_nor_onnxruntime():
    code = "import sys, specc; assert callable(specc.__getattr__); print(sorted(m for m in ('torch', 'onnxruntime') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
