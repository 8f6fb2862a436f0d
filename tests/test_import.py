"""`specc import`: small specs that hold each group and block shape exported to ONNX (random weights,
batchnorm statistics too) come back with the same check report and, with the imported weights,
onnxruntime's outputs; graphs and modules specc cannot express are named, with nothing written.

The specs in specs/ come back in test_import_specs.py and test_zoo.py, torchvision's own models
in test_import_torchvision.py, ConvNeXt's and ShuffleNet's patterns in test_import_patterns.py,
the written weights in eval, train --init-from, export and predict in test_import_weights.py."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from onnx import TensorProto, helper

import specc
from specc.cli import main
from specc.importers import import_onnx

from .import_cases import (
    assert_agrees,
    assert_named_and_nothing_written,
    assert_same_network,
    assert_written_import_agrees,
    onnx_graph,
    onnx_model,
    onnxruntime_outputs,
    outputs,
)

SPECS = Path(__file__).parent.parent / "specs"


GROUPS = """network groups
input 3x16x16
with_bias: conv K=8 F=3 P=1
batchnorm
silu
residual shortcut=auto {
    conv K=16 F=3 S=2 P=1 bias=false
    batchnorm
    relu6
    gate {
        pool avg global
        conv K=4 F=1
        relu
        conv K=16 F=1
        sigmoid
    }
}
concat {
    identity
    pool max F=3 S=1 P=1
}
pool avg global
flatten
fc 3
"""


def test_every_group_comes_back(tmp_path):
    """A conv with a bias before its batchnorm and one without, a projection, a gate, silu, concat with the input."""
    text = assert_same_network("groups", tmp_path, GROUPS).text
    assert "with_bias: conv K=8 F=3 P=1\n" in text and "residual shortcut=project {" in text
    assert all(word in text for word in ("gate {", "silu", "relu6", "concat {", "identity"))
    assert text == specc.fmt.format_text(text)


# --- graphs specc cannot express: named, exit 2, nothing written ---------------


def _unsupported():
    w = onnx.numpy_helper.from_array(np.zeros((1, 4, 4), np.float32), "w")
    r = onnx.numpy_helper.from_array(np.zeros((1, 4, 1), np.float32), "r")
    conv_w = onnx.numpy_helper.from_array(np.zeros((2, 3, 3, 3), np.float32), "cw")
    idx = onnx.numpy_helper.from_array(np.array([0, 1], np.int64), "idx")
    return {
        "matmul": (
            onnx_graph(
                [helper.make_node("Relu", ["x"], ["a"], "/attn/Relu"), helper.make_node("MatMul", ["a", "a"], ["y"], "/attn/MatMul")],
                [1, 4, 4],
                [1, 4, 4],
            ),
            "graph node /attn/MatMul: MatMul of two activations is not a specc layer",
        ),
        "gather": (
            onnx_graph([helper.make_node("Gather", ["x", "idx"], ["y"], "/pick/Gather")], [1, 4], [2, 4], [idx]),
            "graph node /pick/Gather: Gather",
        ),
        "lstm": (
            onnx_graph([helper.make_node("LSTM", ["x", "w", "r"], ["y"], "/rnn/LSTM", hidden_size=1)], [1, 2, 4], [1, 1, 2, 1], [w, r]),
            "graph node /rnn/LSTM: LSTM is not a specc layer (a recurrent layer)",
        ),
        "pads": (
            onnx_graph(
                [helper.make_node("Conv", ["x", "cw"], ["y"], "/c/Conv", kernel_shape=[3, 3], pads=[0, 0, 1, 1])],
                [1, 3, 8, 8],
                [1, 2, 7, 7],
                [conv_w],
            ),
            "asymmetric pads [0, 0, 1, 1]",
        ),
    }


@pytest.mark.parametrize("case", ["matmul", "gather", "lstm", "pads"])
def test_unsupported_graph_is_named_and_nothing_written(case, tmp_path):
    assert_named_and_nothing_written(*_unsupported()[case], tmp_path)


def test_missing_and_truncated_files(tmp_path):
    missing = CliRunner().invoke(main, ["import", str(tmp_path / "none.onnx")])
    assert missing.exit_code == 2 and "no such ONNX file" in missing.output
    cut = tmp_path / "cut.onnx"
    onnx.save(_unsupported()["pads"][0], cut)
    cut.write_bytes(cut.read_bytes()[:40])
    truncated = CliRunner().invoke(main, ["import", str(cut), "-o", str(tmp_path / "cut.cnn")])
    assert truncated.exit_code == 2 and "not a readable ONNX model" in truncated.output
    assert not (tmp_path / "cut.cnn").exists()


def _hand_made(tmp_path: Path) -> Path:
    """A graph as other exporters write one: symbolic sizes, unfolded batchnorm, Clip, MatMul + Add."""
    rng = np.random.default_rng(2)
    const = {
        "cw": rng.standard_normal((4, 3, 3, 3)),
        "cb": rng.standard_normal(4),
        "scale": rng.random(4) + 0.5,
        "shift": rng.standard_normal(4),
        "mean": rng.standard_normal(4),
        "var": rng.random(4) + 0.5,
        "mw": rng.standard_normal((4, 5)),
        "mb": rng.standard_normal(5),
        "lo": np.array(0.0),
        "hi": np.array(6.0),
    }
    initializers = [onnx.numpy_helper.from_array(v.astype(np.float32), k) for k, v in const.items()]
    nodes = [
        helper.make_node("Conv", ["x", "cw", "cb"], ["c"], "/features/0/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node(
            "BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["b"], "/features/1/BN", epsilon=1e-3, momentum=0.99
        ),  # noqa: E501
        helper.make_node("Clip", ["b", "lo", "hi"], ["r"], "/features/2/Clip"),
        helper.make_node("MaxPool", ["r"], ["p"], "/pool/MaxPool", kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
        helper.make_node("GlobalAveragePool", ["p"], ["g"], "/gap"),
        helper.make_node("Flatten", ["g"], ["f"], "/flatten"),
        helper.make_node("MatMul", ["f", "mw"], ["m"], "/head/MatMul"),
        helper.make_node("Add", ["m", "mb"], ["y"], "/head/Add"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])
    model = onnx_model(helper.make_graph(nodes, "g", [x], [y], initializers))
    path = tmp_path / "hand.onnx"
    onnx.save(model, path)
    return path


def test_a_graph_from_elsewhere_with_a_symbolic_input(tmp_path):
    path = _hand_made(tmp_path)
    refused = CliRunner().invoke(main, ["import", str(path), "-o", str(tmp_path / "hand.cnn")])
    assert refused.exit_code == 2 and "--input" in refused.output and not (tmp_path / "hand.cnn").exists()
    imported = import_onnx(path, "hand", (3, 17, 17))
    lines = [line.strip() for line in imported.text.splitlines()]
    assert "features_0: conv K=4 F=3 S=2 P=1" in lines
    assert "features_1: batchnorm eps=0.001 momentum=0.01" in lines
    assert {"relu6", "pool max F=3 S=2 ceil", "pool avg global", "flatten", "head: fc 5"} <= set(lines)
    x = np.random.default_rng(3).standard_normal((2, 3, 17, 17)).astype(np.float32)
    assert_agrees(outputs(imported, x), onnxruntime_outputs(path, x))


def test_graph_names_are_made_legal_and_unique():
    from specc.importers.tree import Layer
    from specc.importers.writer import legal_names

    body = [Layer("conv", name="0.a-b"), Layer("conv", name="/0.a-b/"), Layer("fc", name="conv3"), Layer("fc", name="bn")]
    legal_names(body)
    assert [layer.name for layer in body] == ["l0_a_b", "l0_a_b_2", None, None]  # conv3, bn: names specc gives unnamed layers


# --- repeated units come back as blocks -----------------------------------------

MINI_RESNET = """network mini
input 3x16x16

block down(K) {
    conv K=K F=3 S=2 P=1 bias=false
    batchnorm
    relu
    conv K=K F=1 bias=false
}

block bottleneck(K, S=1) {
    residual shortcut=auto {
        conv K=K F=1 bias=false
        batchnorm
        relu
        conv K=K F=3 S=S P=1 bias=false
        batchnorm
        relu
        conv K=4*K F=1 bias=false
        batchnorm
    }
    relu
}

stem: conv K=8 F=3 P=1 bias=false
batchnorm
relu
layer1: bottleneck(4) x2
mid: seq {
    down(16)
    down(32)
}
layer2: seq {
    bottleneck(8, S=2)
    bottleneck(8) x2
}
pool avg global
flatten
fc 10
"""


def test_repeated_units_come_back_as_one_block(tmp_path):
    """The bottleneck once, its varying channels and stride as parameters (4*K where one is a multiple
    of another), the projecting and the identity units one block through shortcut=auto, stages labelled;
    and a run of layers the source named as one module (`mid_0_...`), a block too."""
    text = assert_same_network("mini", tmp_path, MINI_RESNET).text
    body = text[text.index("block ") :]
    assert body.count("block ") == 2 and "block res(K, S=1) {" in body and "block part(K) {" in body
    assert "residual shortcut=auto {" in body and "conv K=4*K F=1 bias=false" in body and "conv K=K F=3 S=S P=1 bias=false" in body
    lines = [line.strip() for line in text.splitlines()]
    assert {"layer1: res(4) x2", "layer2: seq {", "res(8, S=2)", "res(8) x2", "mid: seq {", "part(16)", "part(32)"} <= set(lines)
    assert text == specc.fmt.format_text(text)


SAME_SHAPE_PROJECTIONS = """network projections
input 8x6x6
conv K=8 F=3 P=1
residual shortcut=project {
    conv K=8 F=3 P=1 bias=false
    batchnorm
}
relu
residual shortcut=project {
    conv K=8 F=3 P=1 bias=false
    batchnorm
}
relu
flatten
fc 3
"""


def test_units_that_auto_would_change_stay_as_they_are(tmp_path):
    """A projection where the shape stays is not what shortcut=auto builds: the block-free spec is kept."""
    text = assert_same_network("projections", tmp_path, SAME_SHAPE_PROJECTIONS).text
    assert "block" not in text and text.count("residual shortcut=project {") == 2


NESTED = """network nested
input 3x16x16

block cbr(K, S=1) {
    conv K=K F=3 S=S P=1 bias=false
    batchnorm
    relu
}
block body(K, S=1) {
    cbr(K, S=S)
    cbr(K)
    conv K=K F=1 bias=false
    batchnorm
}

stem: cbr(8)
residual {
    body(8)
}
residual shortcut=auto {
    body(16, S=2)
}
residual {
    body(16)
}
pool avg global
flatten
fc 10
"""


def test_blocks_nest_and_a_block_is_a_residual_body(tmp_path):
    """Found bottom-up over the source's modules: conv-batchnorm-relu first, then the body made of two
    calls of it, inside each residual; the projecting residual and the others alike."""
    text = assert_same_network("nested", tmp_path, NESTED).text
    blocks = dict(re.findall(r"block (\w+)\((.*?)\) \{", text))
    assert len(blocks) == 2, text
    inner, outer = blocks
    assert blocks[inner] == blocks[outer] == "K, S=1"
    assert f"    {inner}(K, S=S)\n    {inner}(K)\n    conv K=K F=1 bias=false\n" in text
    lines = [line.strip() for line in text.splitlines()]
    assert f"stem: {inner}(8)" in lines and {f"{outer}(8)", f"{outer}(16, S=2)", f"{outer}(16)"} <= set(lines)
    assert "residual {" in lines and "conv" not in text[text.index(f"\nstem: {inner}(8)") :]
    assert text == specc.fmt.format_text(text)


# --- a PyTorch model, through torch.onnx.export ---------------------------------


def tiny_net():
    """What `specc import tests.test_import:tiny_net` builds: named modules, a residual, a repeat."""

    class Unit(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(4, 4, 3, padding=1, bias=False)
            self.bn = torch.nn.BatchNorm2d(4)

        def forward(self, x):
            return torch.relu(x + self.bn(self.conv(x)))

    torch.manual_seed(0)
    stem = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU())
    return torch.nn.Sequential(stem, Unit(), Unit(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 5))


def test_a_pytorch_model_comes_in_through_its_export(tmp_path):
    out, weights = tmp_path / "tiny.cnn", tmp_path / "tiny.safetensors"
    result = CliRunner().invoke(main, ["import", f"{__name__}:tiny_net", "--input", "3x8x8", "-o", str(out), "--weights", str(weights)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert (
        text.startswith(f"# Imported by `specc import` from {__name__}:tiny_net.") and "block unit() {" in text and "unit() x2" in text
    )  # named after its class
    assert_written_import_agrees(out, weights, tiny_net(), (3, 8, 8))
    missing = CliRunner().invoke(main, ["import", f"{__name__}:tiny_net", "-o", str(tmp_path / "x.cnn")])
    assert missing.exit_code == 2 and "--input" in missing.output
    unknown = CliRunner().invoke(main, ["import", "no_such_module_here:net", "--input", "3x8x8", "-o", str(tmp_path / "x.cnn")])
    assert unknown.exit_code == 2 and "cannot import no_such_module_here" in unknown.output and not (tmp_path / "x.cnn").exists()
    assert "name an installed module" in unknown.output


def test_a_module_that_fails_as_it_imports_is_named_so(tmp_path, monkeypatch):
    (tmp_path / "broken_models.py").write_text("raise RuntimeError('operator torchvision::nms does not exist')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = CliRunner().invoke(main, ["import", "broken_models:net", "--input", "3x8x8", "-o", str(tmp_path / "x.cnn")])
    assert result.exit_code == 2 and "cannot import broken_models: RuntimeError: operator torchvision::nms" in result.output
    assert "broken_models is installed but failed to import" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.cnn").exists()


def transformer_block():
    """`specc import tests.test_import:transformer_block`: attention is not a CNN layer."""
    torch.manual_seed(0)
    return torch.nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16, batch_first=True, dropout=0.0)


def lstm():
    class Recurrent(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.LSTM(8, 4, batch_first=True)

        def forward(self, x):
            return self.rnn(x)[0]

    return Recurrent()


@pytest.mark.parametrize("callable_name", ["transformer_block", "lstm"])
def test_a_pytorch_model_specc_cannot_express_is_named(callable_name, tmp_path):
    out = tmp_path / "m.cnn"
    result = CliRunner().invoke(
        main, ["import", f"{__name__}:{callable_name}", "--input", "5x8", "-o", str(out), "--weights", str(tmp_path / "w")]
    )
    assert result.exit_code == 2, result.output
    assert re.search(r"graph node \S+: \w+ .*is not", result.output) and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []
