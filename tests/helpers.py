"""What many test files share: tiny specs, small synthetic data and weights, the CLI invoked in process, forward checks.

The data is 3 classes of 8x8 images, a bright square in a different place per
class, so that a tiny spec learns it in a few CPU epochs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner
from safetensors.torch import save_file
from torch import nn

import specc
from specc.cli import main
from specc.runners import metadata as specc_metadata
from specc.runners.checkpoint import load as load_safetensors

TINY = """\
network tiny
input 1x8x8
conv K=4 F=3 P=1
batchnorm
relu
pool max F=2
flatten
fc 3
softmax
"""
REAL_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def make_npz(folder: Path, n_train: int = 240, n_test: int = 60, seed: int = 0, dtype=np.uint8) -> Path:
    """train.npz and test.npz: class k has a bright 3x3 square at the k-th of three places, over noise."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", n_train), ("test", n_test)):
        y = np.arange(n) % 3
        x = rng.integers(0, 60, size=(n, 8, 8))
        for k, (r, c) in enumerate(((0, 0), (2, 3), (5, 5))):
            x[y == k, r : r + 3, c : c + 3] += 180
        np.savez(folder / f"{name}.npz", x=x.astype(dtype), y=y, classes=np.array(["top", "middle", "bottom"]))
    return folder


def write_spec(folder: Path, text: str = TINY, name: str = "tiny.cnn") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def quick(data: Path, **settings) -> dict:
    """Flags for a run of a few seconds: a small batch, fp32 so that tests do not depend on the CPU."""
    return {"data": str(data), "epochs": 2, "batch_size": 16, "optimizer": "adam", "lr": 0.01, "precision": "fp32"} | settings


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_safetensors(path)[0]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert torch.equal(a[name], b[name]), name


# Named layers (a seq `features`, a `head`), for tests that look for them in an exported graph.
TINY_NAMED = """network tiny
input 1x12x12
features: seq {
    conv K=4 F=3
    batchnorm
    relu
}
pool max F=2
flatten
head: fc 3
softmax
"""


def class_names(net) -> int:
    """How many class names `specc train` saves for `net` on class labels: two for one sigmoid or one score."""
    shape = tuple(net.check().output_shape)
    return specc_metadata.name_count(specc_metadata.task_of_spec(shape, net.network.final_activation), shape) or shape[0]


def trained_weights(net, path: Path, **metadata) -> torch.nn.Module:
    """A model of `net` with every parameter and batchnorm statistic random, saved as `specc train` saves it."""
    torch.manual_seed(0)
    model = net.to_torch()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                # Positive running variances; everything else around its usual scale, so batchnorm folding is tested.
                tensor.copy_(torch.rand_like(tensor) + 0.5 if name.endswith("running_var") else torch.randn_like(tensor) * 0.1)
    channels = net.input_shape[0]
    meta = {
        "specc.network": net.name,
        "specc.classes": json.dumps([f"class {i}" for i in range(class_names(net))]),
        "specc.mean": json.dumps([0.25] * channels),
        "specc.std": json.dumps([0.5] * channels),
        "specc.input_shape": json.dumps(list(net.input_shape)),
        "specc.epoch": "7",
    } | metadata
    save_file({name: t.contiguous() for name, t in model.state_dict().items()}, path, meta)
    return model.eval()


def synthetic(net, folder: Path, n_train: int = 4, n_test: int = 2, float_targets: bool = False) -> Path:
    """train.npz and test.npz of random samples of the spec's input shape, with targets of its output's shape."""
    rng = np.random.default_rng(0)
    out = tuple(net.network.output_shape)
    last = net.network.final_layer
    sigmoid = last is not None and last.kind.name == "sigmoid"
    folder.mkdir(parents=True)
    for name, n in (("train", n_train), ("test", n_test)):
        arrays = {"x": rng.random((n, *net.input_shape), dtype=np.float32)}
        if len(out) > 1:
            arrays["y"] = rng.integers(0, max(out[0], 2), (n, *out[1:]))  # one channel: foreground or not
        elif float_targets:
            arrays["y"] = rng.random((n, out[0]), dtype=np.float32)
        elif sigmoid and out[0] > 1:
            arrays["y"] = (np.arange(n * out[0]).reshape(n, out[0]) % 2).astype(np.float32)
        else:
            classes = 2 if out[0] == 1 else out[0]
            arrays["y"] = np.arange(n) % classes
            arrays["classes"] = np.array([f"class{i}" for i in range(classes)])
        np.savez(folder / f"{name}.npz", **arrays)
    return folder


def forward_with_hooks(model: nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, tuple[int, ...]]]:
    """Run the model once; return its output and every leaf module's output shape (sample dims only)."""
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for name, module in model.named_modules():
        if name and not list(module.children()):
            hook = lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:]))  # noqa: E731
            handles.append(module.register_forward_hook(hook))
    with torch.no_grad():
        out = model(batch)
    for h in handles:
        h.remove()
    return out, shapes


def assert_standalone_file_agrees(net: specc.Net, tmp_path: Path, mode: str) -> None:
    """Write net's model.py, lint it, and run it in a fresh interpreter in `mode` ("eval" or "train").

    In train mode the state dict after the forward pass (running statistics) must agree too.
    """
    source = net.to_source()
    (tmp_path / "model.py").write_text(source)
    assert "specc" not in source.split('"""', 2)[2], "the generated file must not depend on specc"

    lint = [sys.executable, "-m", "ruff", "check", "--isolated", "model.py"]
    ruff = subprocess.run(lint, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr

    model = getattr(net.to_torch(), mode)()
    torch.manual_seed(1)
    batch = torch.randn(2, *net.input_shape)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    out = model(batch).detach()
    torch.save({"state": state, "batch": batch, "out": out, "after": model.state_dict()}, tmp_path / "expected.pt")
    script = (
        "import torch, model\n"
        "classes = [v for v in vars(model).values() if isinstance(v, type) and issubclass(v, torch.nn.Module)]\n"
        "m = [c for c in classes if c.__module__ == 'model'][-1]()\n"
        "e = torch.load('expected.pt')\n"
        "m.load_state_dict(e['state'])\n"
        f"m.{mode}()\n"
        "assert torch.equal(m(e['batch']), e['out'])\n"
        "assert all(torch.equal(v, e['after'][k]) for k, v in m.state_dict().items())\n"
        "print('same')\n"
    )
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "same" in run.stdout, run.stderr
