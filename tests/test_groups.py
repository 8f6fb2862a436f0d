"""The groups that combine branches by function, compiled: gate, stochastic depth, channel split.

Each is held to a module written by hand in torch as torchvision writes it, with the weights
copied across by position; then one spec using them all is counted by torchinfo, written out as
a standalone file, and exported to ONNX.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import specc

from .helpers import assert_standalone_file_agrees, forward_with_hooks


def copy_weights(compiled: nn.Module, reference: nn.Module) -> None:
    theirs, ours = reference.state_dict(), compiled.state_dict()
    assert [t.shape for t in theirs.values()] == [t.shape for t in ours.values()]
    compiled.load_state_dict(dict(zip(ours, theirs.values(), strict=True)))


# ---- gate: squeeze-and-excitation ------------------------------------------------------------


class SqueezeExcitation(nn.Module):
    """torchvision.ops.SqueezeExcitation, written out: avgpool, fc1 (1×1 conv), activation, fc2, scale activation."""

    def __init__(self, channels: int, squeeze: int, activation=nn.ReLU, scale_activation=nn.Sigmoid):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def forward(self, x):
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


SE_NET = """
network se_net
input 3x12x12

block se(C, R=4) {
    gate {
        pool avg global
        conv K=C/R F=1
        relu
        conv K=C F=1
        sigmoid
    }
}

conv K=16 F=3 P=1
relu
se(16)
conv K=8 F=3 S=2 P=1
se(8, R=2)
pool avg global
flatten
fc 5
"""


def test_a_gate_computes_torchvisions_squeeze_and_excitation():
    reference = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        SqueezeExcitation(16, 4),
        nn.Conv2d(16, 8, 3, stride=2, padding=1),
        SqueezeExcitation(8, 4),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    ).eval()
    compiled = specc.loads(SE_NET, "se_net.cnn").to_torch().eval()
    copy_weights(compiled, reference)
    x = torch.randn(4, 3, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), reference(x), rtol=0, atol=1e-6)


def test_a_gate_reads_x_after_its_body_has_run():
    """x * scale: the body's in-place ReLU must not have overwritten the x that the gate multiplies."""
    text = "input 4x6x6\nconv K=4 F=1\ngate {\n  relu\n  conv K=4 F=1\n  sigmoid\n}\n"
    model = specc.loads(text).to_torch().eval()
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        before = model.conv1(x)
        scale = torch.sigmoid(model.conv2(torch.relu(before)))
        torch.testing.assert_close(model(x), scale * before, rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape", ["4x20", "4x6x6x6"], ids=["1d", "3d"])
def test_a_gate_works_in_every_rank(shape: str):
    text = f"input {shape}\ngate {{\n  pool avg global\n  conv K=2 F=1\n  relu\n  conv K=4 F=1\n  sigmoid\n}}\n"
    net = specc.loads(text)
    report = net.check()
    out, shapes = forward_with_hooks(net.to_torch().eval(), torch.randn(2, *net.input_shape))
    assert tuple(out.shape[1:]) == report.output_shape == net.input_shape
    assert all(shapes[row.name] == row.output_shape for row in report.layers)


# ---- stochastic depth ------------------------------------------------------------------------------


def stochastic_depth(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """torchvision.ops.stochastic_depth(x, p, mode="row", training), written out."""
    if not training or p == 0.0:
        return x
    survival = 1.0 - p
    noise = torch.empty([x.shape[0]] + [1] * (x.ndim - 1), dtype=x.dtype, device=x.device)
    noise = noise.bernoulli_(survival)
    if survival > 0.0:
        noise.div_(survival)
    return x * noise


class Block(nn.Module):
    """A residual whose body is dropped per sample, as torchvision's EfficientNet and ConvNeXt blocks do."""

    def __init__(self, channels: int, p: float):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.p = p

    def forward(self, x):
        return x + stochastic_depth(self.bn(self.conv(x)), self.p, self.training)


DROP = "input 4x6x6\nresidual drop={p} {{\n  conv K=4 F=3 P=1 bias=false\n  batchnorm\n}}\n"


def _pair(p: float) -> tuple[nn.Module, nn.Module]:
    compiled = specc.loads(DROP.format(p=p)).to_torch()
    reference = Block(4, p)
    copy_weights(compiled, reference)
    return compiled, reference


def test_stochastic_depth_is_the_identity_in_eval_mode():
    compiled, reference = _pair(0.5)
    plain = specc.loads(DROP.format(p=0)).to_torch()
    copy_weights(plain, reference)
    compiled.eval(), reference.eval(), plain.eval()
    x = torch.randn(16, 4, 6, 6)
    with torch.no_grad():
        assert torch.equal(compiled(x), plain(x))
        torch.testing.assert_close(compiled(x), reference(x), rtol=0, atol=1e-6)


def test_stochastic_depth_drops_whole_samples_in_training_as_torchvision_does():
    p = 0.5
    compiled, reference = _pair(p)
    compiled.train(), reference.train()
    x = torch.randn(64, 4, 6, 6)
    torch.manual_seed(7)
    got = compiled(x)
    torch.manual_seed(7)
    want = reference(x)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)

    # each sample either skips its body (output = x) or keeps it scaled by 1/(1 - p)
    body = reference.bn(reference.conv(x)).detach()  # batch statistics again, so the same body
    dropped = torch.isclose(got, x, atol=1e-6).flatten(1).all(1)
    kept = torch.isclose(got, x + body / (1 - p), atol=1e-5).flatten(1).all(1)
    assert torch.all(dropped ^ kept)
    assert 16 <= int(dropped.sum()) <= 48  # about half of 64; with seed 7, a fixed number
    # gradients reach the body through the samples kept
    got.sum().backward()
    assert compiled.conv1.weight.grad.abs().sum() > 0


# ---- channel split ------------------------------------------------------------------------------


class SplitBlock(nn.Module):
    """ShuffleNetV2's stride-1 unit without the shuffle: half the channels pass, half go through a branch."""

    def __init__(self):
        super().__init__()
        self.left = nn.Conv2d(4, 4, 1)
        self.right = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, groups=4), nn.BatchNorm2d(4), nn.ReLU())

    def forward(self, x):
        a, b = torch.chunk(x, 2, dim=1)
        return torch.cat([self.left(a), self.right(b)], dim=1)


SPLIT = """input 8x6x6
concat split {
    conv K=4 F=1
    seq {
        conv K=4 F=3 P=1 groups=4
        batchnorm
        relu
    }
}
"""


def test_concat_split_gives_each_branch_its_chunk_of_the_channels():
    compiled = specc.loads(SPLIT).to_torch().eval()
    reference = SplitBlock().eval()
    copy_weights(compiled, reference)
    x = torch.randn(3, 8, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), reference(x), rtol=0, atol=1e-6)
    source = specc.loads(SPLIT).to_source()
    assert "part, part_1 = x.chunk(2, dim=1)" in source


def test_concat_split_into_three_branches():
    compiled = specc.loads("input 6x4x4\nconcat split {\n  conv K=1 F=1\n  conv K=2 F=1\n  conv K=3 F=1\n}\n").to_torch().eval()
    x = torch.randn(2, 6, 4, 4)
    parts = torch.chunk(x, 3, dim=1)
    want = torch.cat([conv(part) for conv, part in zip([compiled.conv1, compiled.conv2, compiled.conv3], parts, strict=True)], 1)
    with torch.no_grad():
        assert torch.equal(compiled(x), want)


# ---- shortcut_first: the projection's tensors before the body's (torchvision's RegNet) ------------


class ProjectedFirst(nn.Module):
    """torchvision's ResBottleneckBlock, cut down: `proj` is built before `f`, so its tensors come first."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=2, bias=False), nn.BatchNorm2d(c_out))
        self.f = nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())

    def forward(self, x):
        return torch.relu(self.proj(x) + self.f(x))


SHORTCUT_FIRST = "input 4x8x8\nresidual shortcut=project shortcut_first {\n  conv K=6 F=3 S=2 P=1 bias=false\n  batchnorm\n  relu\n}\n"
SHORTCUT_FIRST += "relu\n"


def test_shortcut_first_lists_the_projection_first_and_computes_the_same_sum():
    reference = ProjectedFirst(4, 6).eval()
    with torch.no_grad():  # statistics that differ between the two batchnorms, so a swap would show
        for i, module in enumerate(m for m in reference.modules() if isinstance(m, nn.BatchNorm2d)):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.fill_(1.0 + i)
    net = specc.loads(SHORTCUT_FIRST, "first.cnn")
    compiled = net.to_torch().eval()
    assert [name.split(".")[0] for name in compiled.state_dict()][::6] == ["shortcut1", "conv1"]
    copy_weights(compiled, reference)
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), reference(x), rtol=0, atol=1e-6)
    rows = net.check().layers  # the table shows the projection first too
    first = [("shortcut1", "conv"), ("shortcut1", "batchnorm"), ("conv1", "conv")]
    assert [(row.name.split(".")[0], row.kind) for row in rows][:3] == first
    plain = specc.loads(SHORTCUT_FIRST.replace(" shortcut_first", ""), "plain.cnn")
    assert (plain.check().total_params, plain.check().total_macs) == (net.check().total_params, net.check().total_macs)


# ---- all of them in one spec: counts, the standalone file, ONNX ------------------------------

ALL = """
network groups
input 3x16x16

block se(C, R=4) {
    gate {
        pool avg global
        conv K=C/R F=1
        relu
        conv K=C F=1
        sigmoid
    }
}

block unit(K) {
    residual drop=0.2 {
        conv K=K F=3 P=1 bias=false
        batchnorm
        relu
        se(K)
    }
}

block stage(K, N) {
    unit(K) x N
}

stem: conv K=16 F=3 P=1
stage(16, 2)
concat split {
    conv K=8 F=1
    seq {
        conv K=8 F=3 P=1 groups=8
        relu
    }
} x2
pool avg global
flatten
fc 4
"""


def test_the_figures_of_every_group_match_torch_and_torchinfo():
    torchinfo = pytest.importorskip("torchinfo")
    net = specc.loads(ALL, "groups.cnn")
    report = net.check()
    model = net.to_torch().eval()
    out, shapes = forward_with_hooks(model, torch.randn(2, *net.input_shape))
    assert tuple(out.shape[1:]) == report.output_shape == (4,)
    modules = dict(model.named_modules())
    for row in report.layers:
        assert shapes[row.name] == row.output_shape, row.name
        assert sum(p.numel() for p in modules[row.name].parameters(recurse=False)) == row.params, row.name
    summary = torchinfo.summary(model, input_size=(1, *net.input_shape), verbose=0)
    assert (report.total_params, report.total_macs) == (summary.total_params, summary.total_mult_adds)


def test_the_standalone_file_of_every_group_agrees(tmp_path: Path):
    net = specc.loads(ALL, "groups.cnn")
    assert "class StochasticDepth(nn.Module):" in net.to_source()
    assert_standalone_file_agrees(net, tmp_path, mode="eval")


def test_every_group_exports_to_onnx_and_agrees_with_torch(tmp_path: Path):
    net = specc.loads(ALL, "groups.cnn")
    model = net.to_torch().eval()
    for module in model.modules():  # batchnorm statistics that are not the identity, so eval mode is really exported
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
    weights = tmp_path / "groups.safetensors"
    save_file({name: t.contiguous() for name, t in model.state_dict().items()}, weights)
    exported = specc.export(net, tmp_path / "groups.onnx", weights=weights)
    assert max(exported.max_abs_diff.values()) <= 1e-4
    x = torch.randn(3, *net.input_shape)
    session = ort.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(got, model(x).numpy(), rtol=0, atol=1e-5)
    ops = {node.op_type for node in onnx.load(exported.path).graph.node}
    assert {"Mul", "Split", "Concat", "Add"} <= ops  # the gate, the split, its concat, the residual
