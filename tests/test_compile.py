"""Compile every spec to PyTorch and hold the checker's figures to what torch reports."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import specc
from specc.cli import main
from specc.errors import EXIT_BAD_SPEC, SpeccError
from specc.ir import RESERVED

from . import reference_nets
from .helpers import assert_standalone_file_agrees, forward_with_hooks

ROOT = Path(__file__).resolve().parent.parent
# torchvision's models over a GMAC (all but a few) cost seconds to a minute each here on two CPU cores,
# and tests/test_zoo.py holds them to torchvision's function, a stronger check than these: left to it.
HEAVY_MACS = 1_000_000_000


def light(path: Path) -> bool:
    return path.parent.name != "torchvision" or specc.load(path).check().total_macs <= HEAVY_MACS


SPECS = [pytest.param(path, id=path.stem) for path in sorted((ROOT / "specs").rglob("*.cnn")) if light(path)]
BIG = {"resnet18", "resnet34", "resnet50"}


@pytest.mark.parametrize("path", SPECS)
def test_compiled_module_matches_checker(path: Path):
    net = specc.load(path)
    report = net.check()
    model = net.to_torch().eval()
    out, shapes = forward_with_hooks(model, torch.randn(2, *net.input_shape))

    assert tuple(out.shape) == (2, *report.output_shape)
    modules = dict(model.named_modules())
    for row in report.layers:
        assert shapes[row.name] == tuple(row.output_shape), row.name
        own = sum(p.numel() for p in modules[row.name].parameters(recurse=False))
        assert own == row.params, row.name
    assert sum(p.numel() for p in model.parameters()) == report.total_params
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == report.trainable_params


@pytest.mark.parametrize("path", SPECS)
def test_macs_match_torchinfo(path: Path):
    torchinfo = pytest.importorskip("torchinfo")
    net = specc.load(path)
    summary = torchinfo.summary(net.to_torch(), input_size=(1, *net.input_shape), verbose=0)
    assert net.check().total_macs == summary.total_mult_adds
    assert net.check().total_params == summary.total_params


@pytest.mark.parametrize("name", sorted(BIG))
def test_resnets_have_torchvisions_parameter_count(name: str):
    compiled = specc.load(ROOT / "specs" / f"{name}.cnn").to_torch()
    reference = getattr(reference_nets, name)()
    count = sum(p.numel() for p in compiled.parameters())
    assert count == reference_nets.TORCHVISION_PARAMS[name] == sum(p.numel() for p in reference.parameters())


def test_resnet50_loads_torchvision_weights_by_order_and_agrees():
    """torchvision's names map onto the spec's by order: the tensors come in the same sequence with the same shapes."""
    torch.manual_seed(0)
    reference = reference_nets.resnet50().eval()
    for module in reference.modules():  # non-trivial running statistics, so eval mode is really tested
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
    compiled = specc.load(ROOT / "specs" / "resnet50.cnn").to_torch().eval()

    theirs, ours = reference.state_dict(), compiled.state_dict()
    assert [t.shape for t in theirs.values()] == [t.shape for t in ours.values()]
    compiled.load_state_dict(dict(zip(ours, theirs.values(), strict=True)))

    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(compiled(x), reference(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("path", SPECS)
def test_generated_file_stands_alone(path: Path, tmp_path: Path):
    """model.py imports in a fresh interpreter, passes ruff, and computes what to_torch() computes."""
    assert_standalone_file_agrees(specc.load(path), tmp_path, mode="eval")


def test_state_dict_reads_like_the_spec():
    model = specc.load(ROOT / "specs" / "resnet18.cnn").to_torch()
    keys = list(model.state_dict())
    assert keys[:2] == ["stem.weight", "bn.weight"]
    assert "layer1.0.conv1.weight" in keys
    assert "layer2.0.shortcut1.0.weight" in keys and "layer2.0.shortcut1.1.running_var" in keys
    assert "layer1.0.shortcut1.0.weight" not in keys  # auto: identity where shapes agree


# ---- every layer kind, every rank ------------------------------------------------------------

KIND_TOUR = """
network tour
input {shape}
init {init}
stem: conv K=8 F=3 P=same
batchnorm
leakyrelu 0.1
conv K=8 F=4 S=2 P=same            # even filter, stride 2: padded explicitly before the conv
elu
maxout 2
gelu
residual shortcut=project {{
    conv K=8 F=3 S=2 P=1 dilation=1 groups=2
    silu
}}
concat {{
    conv K=4 F=1
    seq {{
        pool max F=3 S=1 P=1
        conv K=4 F=3 P=full freeze
        pool avg F=3 S=1
    }}
}}
tanh
dropout 0.1
relu                               # after dropout: in eval mode it reads the dropout's input tensor itself
pool avg global
flatten
fc 6
sigmoid
batchnorm
fc 3 bias=false
softmax
"""


@pytest.mark.parametrize("shape", ["3x40", "3x20x24", "2x12x12x12"], ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("init", ["default", "kaiming", "xavier"])
def test_every_layer_kind_compiles_in_every_rank(shape: str, init: str):
    net = specc.loads(KIND_TOUR.format(shape=shape, init=init), "tour.cnn")
    report = net.check()
    model = net.to_torch().eval()
    out, shapes = forward_with_hooks(model, torch.randn(2, *net.input_shape))
    assert tuple(out.shape) == (2, 3)
    assert torch.allclose(out.sum(1), torch.ones(2))
    for row in report.layers:
        assert shapes[row.name] == tuple(row.output_shape), row.name
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen == ["conv4.weight", "conv4.bias"]
    assert report.frozen_params == sum(p.numel() for n, p in model.named_parameters() if n in frozen)
    # backward works through every layer
    model.train()
    model(torch.randn(2, *net.input_shape)).sum().backward()


def test_init_choice_is_applied():
    spec = "input 3x8x8\ninit {}\nconv K=64 F=3\nbatchnorm\nflatten\nfc 4\n"
    conv_std = {}
    for init in ("default", "kaiming", "xavier"):
        torch.manual_seed(0)
        model = specc.loads(spec.format(init)).to_torch()
        conv_std[init] = model.conv1.weight.std().item()
        if init == "kaiming":
            assert torch.all(model.conv1.bias == 0) and torch.all(model.bn1.weight == 1)
    fan_out = 64 * 9
    assert conv_std["kaiming"] == pytest.approx((2 / fan_out) ** 0.5, rel=0.1)
    assert conv_std["xavier"] == pytest.approx((2 / (3 * 9 + fan_out)) ** 0.5, rel=0.1)
    assert conv_std["default"] != pytest.approx(conv_std["kaiming"], rel=0.1)


def test_relu_after_sigmoid_is_not_in_place():
    """In place would overwrite the sigmoid's output, which its backward needs."""
    model = specc.loads("input 4\nfc 4\nsigmoid\nrelu\nfc 2\n").to_torch()
    assert model.relu1.inplace is False
    x = torch.randn(3, 4, requires_grad=True)
    model(x).sum().backward()


# ---- nothing is overwritten: no in-place operations -------------------------------------------

CLOBBER = "network clobber\ninput 4x8x8\nresidual {\n    dropout 0.5\n    relu\n    conv K=4 F=3 P=1\n}\n"


def test_dropout_then_relu_in_a_residual_keeps_the_identity_branch():
    """At eval nn.Dropout returns its input itself: an in-place ReLU after it would clobber the shortcut."""
    model = specc.loads(CLOBBER, "clobber.cnn").to_torch().eval()
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        want = x + nn.functional.conv2d(torch.relu(x), model.conv1.weight, model.conv1.bias, padding=1)
        assert torch.equal(model(x), want)


def test_dropout_then_relu_in_a_residual_exports(tmp_path: Path):
    exported = specc.export(specc.loads(CLOBBER, "clobber.cnn"), tmp_path / "clobber.onnx")
    assert max(exported.max_abs_diff.values()) <= 1e-5


# Every spec, the kind tour, and the top-level case: in eval mode the dropout hands the caller's own tensor to the relu.
INPUT_CASES = [pytest.param(p.values[0], None, id=p.id, marks=p.marks) for p in SPECS] + [
    *(pytest.param(Path("tour.cnn"), KIND_TOUR.format(shape=s, init="default"), id=f"tour-{s}") for s in ("3x40", "3x20x24")),
    pytest.param(Path("top.cnn"), "input 3x8x8\ndropout 0.5\nrelu\nconv K=2 F=3\n", id="dropout-relu-at-the-top"),
]


@pytest.mark.parametrize(("path", "text"), INPUT_CASES)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_the_callers_input_is_never_changed(path: Path, text: str | None, mode: str):
    net = specc.load(path) if text is None else specc.loads(text, path.name)
    model = getattr(net.to_torch(), mode)()
    assert not any(getattr(m, "inplace", False) for m in model.modules())
    x = torch.randn(2, *net.input_shape)
    kept = x.clone()
    with torch.no_grad():
        model(x)
    assert torch.equal(x, kept)


def test_a_name_torch_reserves_is_refused_by_check():
    with pytest.raises(SpeccError) as err:
        specc.loads("input 3x8x8\neval: conv K=4 F=3\n", "bad.cnn").check()
    assert "bad.cnn:2:1: error: the name 'eval' cannot name a PyTorch module" in err.value.render()
    # every public attribute of the modules the generated file builds is on the list the checker refuses
    attributes = {a for a in dir(nn.Module()) + dir(nn.ModuleDict()) if not a.startswith("_")}
    assert attributes <= RESERVED


@pytest.mark.parametrize(
    ("name", "why"), [("1 bad", "is not a Python name"), ("nn", "uses itself"), ("F", "uses itself"), ("class", "keyword")]
)
def test_a_class_name_that_would_break_the_file_is_refused(name: str, why: str, tmp_path: Path):
    spec, out = tmp_path / "t.cnn", tmp_path / "model.py"
    spec.write_text("input 3x8x8\nconv K=4 F=3\n")
    result = CliRunner().invoke(main, ["compile", str(spec), "--class-name", name, "-o", str(out)])
    assert result.exit_code == EXIT_BAD_SPEC
    assert f"error: the class name '{name}' " in result.stderr and why in result.stderr and "hint:" in result.stderr
    assert not out.exists()
    assert "class MyNet(nn.Module):" in specc.loads(spec.read_text()).to_source("MyNet")


# ---- freeze and batchnorm ---------------------------------------------------------------------

FROZEN_NORMS = """
network tune
input 3x8x8
stem: conv K=4 F=3 P=1 freeze
bn: batchnorm freeze
relu
layer1: seq freeze {
    residual shortcut=project {
        conv K=8 F=3 S=2 P=1
        batchnorm
    }
}
conv K=8 F=3 P=1
batchnorm
relu
pool avg global
flatten
fc 3
"""
FROZEN = ["bn", "layer1.0.bn1", "layer1.0.shortcut1.1"]


def _statistics(norm: nn.Module) -> list[torch.Tensor]:
    return [norm.running_mean.clone(), norm.running_var.clone(), norm.num_batches_tracked.clone()]


def test_a_frozen_batchnorm_keeps_its_running_statistics_in_train_mode():
    """As Keras does with a non-trainable BatchNormalization: fine-tuning must not shift what was learnt."""
    model = specc.loads(FROZEN_NORMS, "tune.cnn").to_torch()
    norms = {name: m for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert sorted(norms) == sorted([*FROZEN, "bn1"])
    for norm in norms.values():  # statistics that differ from the batch's, so a batch-normalised output would differ
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 1.5)
    before = {name: _statistics(norm) for name, norm in norms.items()}
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def keep(name):
        def hook(module, args, output):
            seen[name] = (args[0].detach().clone(), output.detach().clone())

        return hook

    for name in FROZEN:
        norms[name].register_forward_hook(keep(name))

    model.train()
    assert model.training and norms["bn1"].training
    model(torch.randn(4, 3, 8, 8))

    for name in FROZEN:
        assert not norms[name].training, name
        assert all(torch.equal(a, b) for a, b in zip(before[name], _statistics(norms[name]), strict=True)), name
        x, out = seen[name]
        with torch.no_grad():
            in_eval_mode = nn.functional.batch_norm(x, before[name][0], before[name][1], norms[name].weight, norms[name].bias)
        assert torch.equal(out, in_eval_mode), name
    assert not torch.equal(before["bn1"][0], norms["bn1"].running_mean)
    assert not torch.equal(before["bn1"][1], norms["bn1"].running_var)
    assert norms["bn1"].num_batches_tracked.item() == 1
    model.eval()
    assert not any(m.training for m in model.modules())


def test_a_frozen_batchnorm_starts_in_eval_mode():
    model = specc.loads(FROZEN_NORMS, "tune.cnn").to_torch()
    assert model.training and model.bn1.training
    assert not model.bn.training


def test_the_generated_file_keeps_frozen_batchnorms_in_train_mode_too(tmp_path: Path):
    assert_standalone_file_agrees(specc.loads(FROZEN_NORMS, "tune.cnn"), tmp_path, mode="train")


def test_no_train_method_without_a_frozen_batchnorm():
    source = specc.loads(FROZEN_NORMS.replace("bn: batchnorm freeze", "bn: batchnorm").replace("seq freeze", "seq"), "t.cnn").to_source()
    assert "def train" not in source and "self.train()" not in source
