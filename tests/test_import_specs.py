"""Every hand-written spec in specs/ comes back through `specc import`, both ways: its ONNX export
(random weights) imported from the file, and the module `to_torch()` builds imported with its own
state; each with the same check report, and the outputs of onnxruntime and of the module.

The zoo's specs (resnet18, resnet50 and specs/torchvision/) come back the same way in
test_zoo.py, from the export it makes there, against torchvision's own outputs.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import specc
from specc.backends.onnx import DEFAULT_OPSET, convert
from specc.importers import import_onnx
from specc.importers.pytorch import import_exported

from .import_cases import assert_agrees, onnxruntime_outputs, outputs, random_state, rows, tensor_sums

SPECS = Path(__file__).parent.parent / "specs"
CASES = ["convnetjs_cifar10", "dna_cnn1d", "fashion", "inception_mini", "keras_mnist", "lecture_convnet", "lenet5", "zoo_tour"]
SLOW = ["resnet34", "unet", "voxnet3d"]  # resnet34 at 64x64 (its `input` line changed): the same layers, quicker
CASES += SLOW


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW else []) for n in CASES])
def test_a_spec_comes_back_both_ways(name, tmp_path):
    text = re.sub(r"^input 3x224x224", "input 3x64x64", (SPECS / f"{name}.cnn").read_text(), flags=re.M)
    original = specc.loads(text, f"{name}.cnn")
    module = original.to_torch().eval()
    module.load_state_dict(random_state(original))
    path = tmp_path / f"{name}.onnx"  # what `specc export` writes, without its own onnxruntime check
    path.write_bytes(convert(module, original.input_shape, name, DEFAULT_OPSET, {"specc.output": "output"}, name).SerializeToString())
    x = np.random.default_rng(1).standard_normal((2, *original.input_shape)).astype(np.float32)
    want = onnxruntime_outputs(path, x)
    from_onnx = import_onnx(path)
    from_pytorch = import_exported(module, path, original.input_shape, name, f"{name}.cnn")
    for imported in (from_onnx, from_pytorch):
        assert rows(imported.net) == rows(original)
        assert imported.net.check().total_params == original.check().total_params
        assert_agrees(outputs(imported, x), want)
    # From PyTorch the module's own tensors came across, not the exporter's folded ones, whatever their names.
    assert tensor_sums(from_pytorch.tensors) == tensor_sums(module.state_dict())
