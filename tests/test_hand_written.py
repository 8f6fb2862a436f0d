"""Specs with no torchvision builder compute the function of a network written by hand.

The counterpart of tests/test_zoo.py for models torchvision does not have (the small U-Net): the
reference is a plain PyTorch module in tests/reference_nets.py. Its tensors, with random biases and
batchnorm statistics, loaded into the compiled module by position, give the same outputs in eval and
in train mode; `specc check` counts its parameters and torchinfo's MACs; the ONNX export agrees.
torchvision is not needed here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

import specc
from specc.cli import main

from . import reference_nets

ROOT = Path(__file__).resolve().parent.parent
RELATIVE = 1e-4  # largest |specc - reference| over the largest |reference| output


@dataclass(frozen=True)
class Reference:
    spec: str  # under specs/
    build: Callable[[], torch.nn.Module]  # the network written by hand, modules in the spec's order
    batch: int = 2  # two samples, so that train mode's batch statistics are a real test


HAND_WRITTEN = {
    "unet": Reference("unet.cnn", reference_nets.UNet),
}


def randomise(model: torch.nn.Module) -> torch.nn.Module:
    """Random biases and batchnorm affines and statistics (PyTorch's init leaves them at 0 and 1, where a
    swapped or dropped one would still agree); the weights keep PyTorch's random init."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator) + 0.5)
            if isinstance(getattr(module, "bias", None), torch.nn.Parameter):
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
    return model


def ratio(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


@dataclass
class Pair:
    net: specc.Net
    reference: torch.nn.Module
    compiled: torch.nn.Module  # with the reference's tensors loaded by position
    batch: torch.Tensor


def make_pair(name: str) -> Pair:
    spec = HAND_WRITTEN[name]
    net = specc.load(ROOT / "specs" / spec.spec)
    torch.manual_seed(0)
    reference = randomise(spec.build()).eval()
    compiled = net.to_torch().eval()
    theirs, ours = reference.state_dict(), compiled.state_dict()
    assert [tuple(t.shape) for t in ours.values()] == [tuple(t.shape) for t in theirs.values()], "the tensors differ in order or shape"
    compiled.load_state_dict(dict(zip(ours, theirs.values(), strict=True)))
    batch = torch.randn(spec.batch, *net.input_shape, generator=torch.Generator().manual_seed(1))
    return Pair(net, reference, compiled, batch)


@pytest.fixture(scope="module", params=list(HAND_WRITTEN))
def pair(request) -> Pair:
    return make_pair(request.param)


def test_parameters_equal_the_references(pair: Pair):
    spec = ROOT / "specs" / HAND_WRITTEN[pair.net.name].spec
    result = CliRunner().invoke(main, ["check", "--json", str(spec)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total_params"] == sum(p.numel() for p in pair.reference.parameters())


def test_macs_equal_torchinfos(pair: Pair):
    torchinfo = pytest.importorskip("torchinfo")
    summary = torchinfo.summary(pair.reference, input_size=(1, *pair.net.input_shape), verbose=0)
    assert pair.net.check().total_macs == summary.total_mult_adds


def test_same_outputs_as_the_reference_in_eval_mode(pair: Pair):
    with torch.no_grad():
        want, got = pair.reference(pair.batch), pair.compiled(pair.batch)
    assert got.shape == want.shape == (len(pair.batch), *pair.net.check().output_shape)
    assert ratio(got.numpy(), want.numpy()) <= RELATIVE


def test_same_outputs_and_statistics_as_the_reference_in_train_mode(pair: Pair):
    """Batch statistics, and the running statistics they update, as the reference's: copies, so the pair stays as made."""
    reference, compiled = make_pair(pair.net.name).reference.train(), make_pair(pair.net.name).compiled.train()
    with torch.no_grad():
        want, got = reference(pair.batch), compiled(pair.batch)
    assert ratio(got.numpy(), want.numpy()) <= RELATIVE
    for theirs, ours in zip(reference.state_dict().values(), compiled.state_dict().values(), strict=True):
        assert torch.allclose(ours.float(), theirs.float(), rtol=1e-5, atol=1e-6)


def test_onnx_export_computes_the_references_function(pair: Pair, tmp_path: Path):
    ort = pytest.importorskip("onnxruntime")
    weights = tmp_path / "w.safetensors"
    save_file({k: t.contiguous() for k, t in pair.compiled.state_dict().items()}, weights)
    exported = specc.export(pair.net, tmp_path / "net.onnx", weights=weights)
    session = ort.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: pair.batch.numpy()})
    with torch.no_grad():
        want = pair.reference(pair.batch).numpy()
    assert got.shape == want.shape and ratio(got, want) <= RELATIVE
