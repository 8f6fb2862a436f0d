"""torchvision's CNN zoo, written as specs, computes torchvision's function.

For every model: `specc check --json` counts torchvision's parameters and torchinfo's MACs;
torchvision's weights (random, with random batchnorm statistics and biases) loaded into the
compiled module by position give torchvision's outputs in eval mode; the ONNX export does too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

import specc
from specc.cli import main

from . import torchvision_models as tv

ROOT = Path(__file__).resolve().parent.parent
ONNX_QUICK = {"alexnet"}  # exporting and checking takes 30 s to minutes a model on two CPU cores: the rest are slow
RELATIVE = 1e-4  # largest |specc - torchvision| over the largest |torchvision| output


@dataclass(frozen=True)
class Model:
    spec: str  # under specs/
    builder: str  # torchvision.models.<builder>
    kwargs: dict = field(default_factory=dict)
    slow: bool = False  # seconds of forward passes and export on two CPU cores
    batch: int = 2
    macs: Callable[[], int] | None = None  # counted by hand, where torchinfo counts otherwise (ConvNeXt)


def convnext_tiny_macs() -> int:
    """ConvNeXt-Tiny's MACs by hand, specc's convention: a layer's weights and bias once per output
    position (a pointwise conv, so each of the MLP's Linears at every pixel), a norm's 2C once.

    torchinfo counts an nn.Linear by its parameters once per sample whatever the tensor's rank, so
    for the MLP on the channels-last tensor it reports 1/(H x W) of this: 322,371,592 in all.
    """
    total = (3 * 4 * 4 * 96 + 96) * 56 * 56 + 2 * 96  # stem: 4x4 conv, stride 4; layernorm
    for c, n, width in ((96, 3, 56), (192, 3, 28), (384, 9, 14), (768, 3, 7)):
        if c != 96:  # downsampling: layernorm over c/2 channels, 2x2 conv with stride 2
            total += c + (4 * (c // 2) * c + c) * width**2
        depthwise, mlp = (49 * c + c) * width**2, (4 * c * c + 4 * c + 4 * c * c + c) * width**2
        total += n * (depthwise + 2 * c + mlp)  # the layer scale: no MACs
    return total + 2 * 768 + 768 * 1000 + 1000  # head: layernorm, fc


ZOO = {
    "alexnet": Model("torchvision/alexnet.cnn", "alexnet"),
    "vgg16": Model("torchvision/vgg16.cnn", "vgg16", slow=True, batch=1),
    "vgg16_bn": Model("torchvision/vgg16_bn.cnn", "vgg16_bn", slow=True, batch=1),
    "densenet121": Model("torchvision/densenet121.cnn", "densenet121"),
    "squeezenet1_0": Model("torchvision/squeezenet1_0.cnn", "squeezenet1_0", batch=1),
    "googlenet": Model("torchvision/googlenet.cnn", "googlenet", {"aux_logits": False, "init_weights": True}, batch=1),
    "mobilenet_v2": Model("torchvision/mobilenet_v2.cnn", "mobilenet_v2", batch=1),
    "resnet18": Model("resnet18.cnn", "resnet18"),
    "resnext50_32x4d": Model("torchvision/resnext50_32x4d.cnn", "resnext50_32x4d", batch=1),
    "wide_resnet50_2": Model("torchvision/wide_resnet50_2.cnn", "wide_resnet50_2", slow=True, batch=1),
    "resnet50": Model("resnet50.cnn", "resnet50", slow=True, batch=1),
    "mobilenet_v3_small": Model("torchvision/mobilenet_v3_small.cnn", "mobilenet_v3_small", batch=1),
    "efficientnet_b0": Model("torchvision/efficientnet_b0.cnn", "efficientnet_b0", batch=1),
    "shufflenet_v2_x1_0": Model("torchvision/shufflenet_v2_x1_0.cnn", "shufflenet_v2_x1_0", batch=1),
    "regnet_y_400mf": Model("torchvision/regnet_y_400mf.cnn", "regnet_y_400mf", batch=1),
    "convnext_tiny": Model("torchvision/convnext_tiny.cnn", "convnext_tiny", slow=True, batch=1, macs=convnext_tiny_macs),
}


def ratio(got: np.ndarray, want: np.ndarray) -> float:
    """Largest |got - want| over the largest |want|: NaN-safe (NaN fails any `<=`)."""
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


@dataclass
class Pair:
    name: str
    model: Model
    net: specc.Net
    reference: torch.nn.Module  # torchvision's, randomised
    compiled: torch.nn.Module  # specc's, with the reference's tensors loaded by position
    batch: torch.Tensor


def make_pair(name: str) -> Pair:
    model = ZOO[name]
    net = specc.load(ROOT / "specs" / model.spec)
    batch = torch.randn(model.batch, *net.input_shape, generator=torch.Generator().manual_seed(1))
    reference = tv.randomise(tv.build(model.builder, **model.kwargs))
    compiled = net.to_torch().eval()
    theirs, ours = tv.in_spec_order(reference.state_dict()), compiled.state_dict()
    assert [tuple(t.shape) for t in ours.values()] == [tuple(t.shape) for t in theirs.values()], "the tensors differ in order or shape"
    compiled.load_state_dict(dict(zip(ours, theirs.values(), strict=True)))
    return Pair(name, model, net, reference, compiled, batch)


def params(slow: set[str]):
    return [pytest.param(name, marks=[pytest.mark.slow] if name in slow else []) for name in ZOO]


@pytest.fixture(scope="module", params=params({n for n, m in ZOO.items() if m.slow}))
def pair(request) -> Pair:
    """One model at a time (module scope groups the tests by model), so only one big pair is in memory."""
    return make_pair(request.param)


def test_spec_is_named_as_torchvision_names_it(pair: Pair):
    assert pair.net.name == pair.model.builder == pair.name
    assert len((ROOT / "specs" / pair.model.spec).read_text().splitlines()) < 60


def test_parameters_equal_torchvisions(pair: Pair):
    result = CliRunner().invoke(main, ["check", "--json", str(ROOT / "specs" / pair.model.spec)])
    assert result.exit_code == 0, result.output
    # stdout alone: a spec's warning (SqueezeNet's at 224x224) goes to stderr
    assert json.loads(result.stdout)["total_params"] == sum(p.numel() for p in pair.reference.parameters())


def test_macs_equal_torchinfos(pair: Pair):
    torchinfo = pytest.importorskip("torchinfo")
    summary = torchinfo.summary(pair.reference, input_size=(1, *pair.net.input_shape), verbose=0)
    if pair.model.macs is not None:  # torchinfo counts a Linear on a 4-D tensor once per sample: the count by hand
        assert summary.total_mult_adds < pair.model.macs() == pair.net.check().total_macs
    else:
        assert pair.net.check().total_macs == summary.total_mult_adds


def test_same_outputs_as_torchvision_with_its_weights(pair: Pair):
    with torch.no_grad():
        want, got = pair.reference(pair.batch), pair.compiled(pair.batch)
    assert got.shape == want.shape
    assert ratio(got.numpy(), want.numpy()) <= RELATIVE


def settings(model: torch.nn.Module, batch: torch.Tensor) -> list[tuple]:
    """What eval outputs cannot show, in the order the modules run: the norms' eps and momentum,
    and the rates of dropout and stochastic depth. Only modules that run count (torchvision's
    EfficientNet gives a StochasticDepth to blocks without a shortcut, which never use it), and
    rates of 0 do not (densenet121's `dropout 0` stands in for an identity)."""
    out = []

    def record(module, _inputs):
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            out.append(("batchnorm", module.eps, module.momentum))
        elif isinstance(module, torch.nn.LayerNorm):
            out.append(("layernorm", module.eps))
        elif (isinstance(module, torch.nn.Dropout) or type(module).__name__ == "StochasticDepth") and module.p:
            out.append((type(module).__name__, round(module.p, 12)))  # 12 places: I/80 and 0.2 * I/16 differ in the last bit

    hooks = [m.register_forward_pre_hook(record) for m in model.modules()]
    try:
        with torch.no_grad():
            model(batch)
    finally:
        for hook in hooks:
            hook.remove()
    return out


def test_norms_and_drop_rates_are_torchvisions(pair: Pair):
    assert settings(pair.compiled, pair.batch) == settings(pair.reference, pair.batch)


@pytest.mark.parametrize("name", params(set(ZOO) - ONNX_QUICK))
def test_onnx_export_computes_torchvisions_function(name: str, tmp_path: Path):
    ort = pytest.importorskip("onnxruntime")
    pair = make_pair(name)
    weights = tmp_path / "w.safetensors"
    save_file({k: t.contiguous() for k, t in pair.compiled.state_dict().items()}, weights)
    exported = specc.export(pair.net, tmp_path / "net.onnx", weights=weights)
    session = ort.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: pair.batch.numpy()})
    with torch.no_grad():
        want = pair.reference(pair.batch).numpy()
    assert ratio(got, want) <= RELATIVE
    # The file comes back through `specc import`: from ONNX, and with the compiled module's own state.
    from specc.importers import import_onnx
    from specc.importers.pytorch import import_exported

    from .import_cases import assert_agrees, outputs, rows

    shape = pair.net.input_shape
    with torch.no_grad():
        compiled = pair.compiled(pair.batch).numpy()
    from_onnx, from_pytorch = import_onnx(exported.path), import_exported(pair.compiled, exported.path, shape, name, pair.model.spec)
    for imported, source in ((from_onnx, got), (from_pytorch, compiled)):
        assert rows(imported.net) == rows(pair.net)
        mine = outputs(imported, pair.batch)
        assert_agrees(mine, source)  # what it came from
        assert ratio(mine, want) <= RELATIVE  # and torchvision's function
        assert "\nblock " in imported.text, imported.text


def test_every_spec_is_imported_back_by_a_test():
    """The zoo's specs here, against torchvision; the others in test_import_specs."""
    from .test_import_specs import CASES

    every = {str(p.relative_to(ROOT / "specs")) for p in (ROOT / "specs").rglob("*.cnn")}
    assert every == {m.spec for m in ZOO.values()} | {f"{name}.cnn" for name in CASES}
