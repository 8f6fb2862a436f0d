"""What the tests of `specc import` share: how an import is compared with what it came from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner
from onnx import TensorProto, helper

import specc
from specc.cli import main
from specc.importers import import_onnx
from specc.runners.checkpoint import save_atomic
from specc.runners.export import export


def rows(net) -> list[tuple]:
    """The check report, row by row. Dropout and stochastic depth are the identity at inference, and
    the exporter leaves them out of the graph."""
    kept = [layer for layer in net.network.layers() if layer.kind.name not in ("dropout", "stochastic_depth")]
    return [(layer.kind.name, layer.out_shape, layer.params, layer.macs, layer.receptive_field) for layer in kept]


def outputs(imported, x) -> np.ndarray:
    """The imported network's outputs on `x`, with the imported weights."""
    model = imported.net.to_torch().eval()
    model.load_state_dict(imported.tensors)
    with torch.no_grad():
        return model(torch.as_tensor(np.asarray(x))).numpy()


def onnxruntime_outputs(path, x) -> np.ndarray:
    """onnxruntime's outputs of the ONNX file at `path` on `x`: the independent reference."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (want,) = session.run(None, {session.get_inputs()[0].name: np.asarray(x)})
    return want


def assert_agrees(got, want) -> None:
    """Within 1e-5 of `want`, scaled by its largest output where that is above 1: float32 rounding grows
    with the outputs, and an untrained deep network's logits reach the hundreds."""
    got, want = np.asarray(got), np.asarray(want)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * max(1.0, float(np.abs(want).max())))


def tensor_sums(state, squeeze: bool = False) -> list[tuple]:
    """Every tensor of a state as (shape, sum), in no order: the same tensors whatever they are named.
    `squeeze`: shapes without their 1s, where an nn.Linear on the channels is a 1x1 conv (K x C x 1 x 1)."""
    return sorted(
        (tuple(t.squeeze().shape if squeeze else t.shape), round(float(t.double().sum()), 4))
        for name, t in state.items()
        if not name.endswith("num_batches_tracked")
    )


def random_state(net, roles: tuple[str, ...] = ("bias", "scale")) -> dict[str, torch.Tensor]:
    """`net`'s state with batchnorm statistics and scales made random, so that a folded batchnorm is not
    the identity, and `roles` too: the exporter leaves out a bias that is all zeros (as xavier's are)."""
    generator = torch.Generator().manual_seed(0)
    state = net.to_torch().state_dict()
    batchnorms = {name.rsplit(".", 1)[0] for name in state if name.endswith("running_var")}
    for name, tensor in state.items():
        owner, role = name.rsplit(".", 1)
        if (owner in batchnorms or role in roles) and tensor.is_floating_point():
            noise = torch.rand(tensor.shape, generator=generator)
            state[name] = noise + 0.5 if role in ("weight", "running_var", "scale") else noise - 0.5
    return state


def assert_named_and_nothing_written(model, message: str, tmp_path) -> None:
    """`specc import` of the ONNX `model` exits 2 with `message` and leaves only the model in `tmp_path`."""
    import onnx

    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    result = CliRunner().invoke(main, ["import", str(path), "-o", str(tmp_path / "m.cnn"), "--weights", str(tmp_path / "m.safetensors")])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def assert_written_import_agrees(spec, weights, model, input_shape: tuple[int, ...]) -> None:
    """The spec and weights `specc import` wrote load as specc loads any, and compute what `model` does."""
    from specc.runners.weights import load_strict

    net = specc.load(spec)
    assert net.check().total_params == sum(p.numel() for p in model.parameters())
    mine = net.to_torch().eval()
    load_strict(mine, weights, str(spec), net.name, "")
    x = torch.randn(2, *input_shape, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(mine(x), model.eval()(x), rtol=0, atol=1e-5)


def assert_same_network(name: str, tmp_path: Path, text: str):
    """`text` exported to ONNX with random weights and imported back: the same rows, parameters and outputs."""
    original = specc.loads(text, f"{name}.cnn")
    weights, model = tmp_path / f"{name}.safetensors", tmp_path / f"{name}.onnx"
    save_atomic(weights, random_state(original, roles=("bias",)))  # a layerscale keeps its init: `layerscale 0.5` comes back
    export(original, model, weights)
    imported = import_onnx(model, name)
    assert rows(imported.net) == rows(original)
    assert imported.net.check().total_params == original.check().total_params
    x = np.random.default_rng(1).standard_normal((2, *original.input_shape)).astype(np.float32)
    assert_agrees(outputs(imported, x), onnxruntime_outputs(model, x))
    return imported


def onnx_graph(nodes, input_shape, output_shape, initializers=()):
    """A one-input, one-output ONNX model of `nodes`, from `x` to `y`."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, output_shape)
    return onnx_model(helper.make_graph(nodes, "g", [x], [y], list(initializers)))


def onnx_model(graph):
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)  # onnxruntime reads IR 10
