"""`specc import` of patterns that span several ONNX nodes (specc/importers/patterns.py): ConvNeXt's
channels-last layernorm and MLP, layerscale, ShuffleNet's channel shuffle and `concat split`; from
specc's own export, from a PyTorch module written the way torchvision writes them, and from a graph
that slices the channels as other exporters do."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner
from onnx import helper
from torch import nn

import specc
from specc.cli import main
from specc.importers import import_onnx

from .import_cases import assert_named_and_nothing_written, assert_same_network, assert_written_import_agrees, onnx_graph

PATTERNS = """network patterns
input 8x8x8
conv K=8 F=3 P=1 groups=8
layernorm eps=1e-6
conv K=16 F=1
gelu
conv K=8 F=1
layerscale 0.5
concat split {
    identity
    seq {
        conv K=4 F=1 bias=false
        batchnorm
        relu
    }
}
shuffle 2
pool avg global
layernorm
flatten
layernorm eps=0.001
fc 3
"""

PATTERNS_1D = """network patterns_1d
input 4x16
conv K=8 F=3 P=1
layernorm
layerscale
concat split {
    relu
    identity
}
shuffle 4
flatten
fc 2
"""


@pytest.mark.parametrize("text", [PATTERNS, PATTERNS_1D], ids=["2d", "1d"])
def test_specc_export_of_the_patterns_comes_back(text, tmp_path):
    """ChannelLayerNorm (movedim, LayerNormalization, movedim), layerscale, shuffle, concat split (one Split), flat layernorm."""
    name = text.split()[1]
    imported = assert_same_network(name, tmp_path, text).text
    lines = {line.strip() for line in imported.splitlines()}
    assert "concat split {" in lines and ("shuffle 2" in lines or "shuffle 4" in lines)
    if name == "patterns":
        assert {"layernorm eps=1e-6", "layerscale 0.5", "layernorm", "layernorm eps=0.001", "conv K=16 F=1"} <= lines
    assert imported == specc.fmt.format_text(imported)


# --- the same patterns as torchvision writes them ------------------------------


class LayerNorm2d(nn.LayerNorm):
    """torchvision.models.convnext.LayerNorm2d."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        return nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps).permute(0, 3, 1, 2)


class Permute(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return x.permute(self.dims)


class CNBlock(nn.Module):
    """torchvision's ConvNeXt block: depthwise conv, then on the channels-last tensor layernorm, Linear, GELU, Linear."""

    def __init__(self, dim: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, 7, padding=3, groups=dim),
            Permute([0, 2, 3, 1]),
            nn.LayerNorm(dim, eps=1e-6),
            nn.Linear(dim, 4 * dim),
            nn.GELU(),
            nn.Linear(4 * dim, dim),
            Permute([0, 3, 1, 2]),
        )
        self.layer_scale = nn.Parameter(torch.ones(dim, 1, 1) * 1e-6)

    def forward(self, x):
        result = self.layer_scale * self.block(x)
        result += x
        return result


class ShuffleUnit(nn.Module):
    """torchvision's stride-1 ShuffleNetV2 InvertedResidual: half the channels pass, half go through branch2, then shuffle."""

    def __init__(self, channels: int):
        super().__init__()
        half = channels // 2
        self.branch2 = nn.Sequential(nn.Conv2d(half, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True))

    def forward(self, x):
        x1, x2 = x.chunk(2, dim=1)
        out = torch.cat((x1, self.branch2(x2)), dim=1)
        batch, channels, height, width = out.size()
        out = out.view(batch, 2, channels // 2, height, width)
        return torch.transpose(out, 1, 2).contiguous().view(batch, channels, height, width)


def torchvision_like():
    """What `specc import tests.test_import_patterns:torchvision_like` builds; every parameter and statistic random."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 2, 2),
        LayerNorm2d(8, eps=1e-6),
        ShuffleUnit(8),
        CNBlock(8),
        nn.AdaptiveAvgPool2d(1),  # after the block, the exporter writes an as_strided (Reshape, Gather) here
        LayerNorm2d(8, eps=1e-6),
        nn.Flatten(),
        nn.Linear(8, 3),
    )
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5)
    return model.eval()


def test_torchvision_style_module_comes_in_through_its_export(tmp_path):
    out, weights = tmp_path / "tv.cnn", tmp_path / "tv.safetensors"
    target = f"{__name__}:torchvision_like"
    result = CliRunner().invoke(main, ["import", target, "--input", "3x8x8", "-o", str(out), "--weights", str(weights)])
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in out.read_text().splitlines()]
    assert "concat split {" in lines and "shuffle 2" in lines and "layerscale" in " ".join(lines)
    assert any(line.endswith("conv K=32 F=1") for line in lines) and sum(line.endswith("layernorm eps=1e-6") for line in lines) == 3
    assert_written_import_agrees(out, weights, torchvision_like(), (3, 8, 8))


# --- hand-made graphs: slices, and what is named rather than imported -----------


def _constants(**arrays):
    return [onnx.numpy_helper.from_array(np.asarray(v), k) for k, v in arrays.items()]


def test_two_slices_of_the_channels_are_concat_split(tmp_path):
    """x.chunk(2, dim=1) as two Slices (ends past the last channel, as exporters write), the second half through a relu."""
    i64 = np.int64
    nodes = [
        helper.make_node("Slice", ["x", "zero", "half", "axis"], ["a"], "/chunk/Slice"),
        helper.make_node("Slice", ["x", "half", "big", "axis"], ["b"], "/chunk/Slice_1"),
        helper.make_node("Relu", ["b"], ["r"], "/branch/Relu"),
        helper.make_node("Concat", ["a", "r"], ["y"], "/cat", axis=1),
    ]
    const = _constants(zero=np.array([0], i64), half=np.array([2], i64), big=np.array([2**62], i64), axis=np.array([1], i64))
    path = tmp_path / "sliced.onnx"
    onnx.save(onnx_graph(nodes, [1, 4, 3, 3], [1, 4, 3, 3], const), path)
    imported = import_onnx(path)
    assert [line.strip() for line in imported.text.splitlines()[4:]] == ["concat split {", "identity", "relu", "}"]
    x = np.random.default_rng(0).standard_normal((1, 4, 3, 3)).astype(np.float32)
    (want,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    with torch.no_grad():
        np.testing.assert_array_equal(imported.net.to_torch().eval()(torch.from_numpy(x)).numpy(), want)


def _unsupported():
    to_last = helper.make_node("Transpose", ["x"], ["t"], "/ln/Transpose", perm=[0, 2, 3, 1])
    back = helper.make_node("Transpose", ["p"], ["y"], "/ln/Transpose_2", perm=[0, 3, 1, 2])
    pool = helper.make_node("MaxPool", ["t"], ["p"], "/pool/MaxPool", kernel_shape=[1, 2])
    return {
        "channels_last": (
            onnx_graph([to_last, pool, back], [1, 4, 4, 4], [1, 3, 4, 4]),
            "graph node /pool/MaxPool: MaxPool on a channels-last tensor (between two Transposes) is not a specc layer",
        ),
        "perm": (
            onnx_graph([helper.make_node("Transpose", ["x"], ["y"], "/t/Transpose", perm=[0, 1, 3, 2])], [1, 4, 4, 5], [1, 4, 5, 4]),
            "graph node /t/Transpose: Transpose with perm=[0, 1, 3, 2] is not a specc layer",
        ),
        "scalar_mul": (
            onnx_graph([helper.make_node("Mul", ["x", "k"], ["y"], "/scale/Mul")], [1, 4, 3, 3], [1, 4, 3, 3], _constants(k=np.float32(2))),
            "graph node /scale/Mul: Mul by [] is not a specc layer (layerscale is one factor per channel",
        ),
        "unequal_split": (
            onnx_graph(
                [
                    helper.make_node("Split", ["x", "sizes"], ["a", "b"], "/chunk/Split", axis=1),
                    helper.make_node("Concat", ["b", "a"], ["y"], "/cat", axis=1),
                ],
                [1, 4, 3, 3],
                [1, 4, 3, 3],
                _constants(sizes=np.array([1, 3], np.int64)),
            ),
            "graph node /chunk/Split: Split into [1, 3] on axis 1 is not equal parts of the channels",
        ),
    }


@pytest.mark.parametrize("case", ["channels_last", "perm", "scalar_mul", "unequal_split"])
def test_what_the_patterns_cannot_express_is_named(case, tmp_path):
    assert_named_and_nothing_written(*_unsupported()[case], tmp_path)
