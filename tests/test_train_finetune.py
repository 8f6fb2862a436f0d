"""Fine-tuning: --init-from loads what matches by name and shape and says what it skipped; `freeze` holds layers."""

from __future__ import annotations

import torch

import specc
from specc.runners.train import train

from .helpers import TINY, invoke, make_npz, quick, weights, write_spec

WIDER_HEAD = TINY.replace("fc 3\n", "fc 16\nrelu\nfc 3\n")


def test_init_from_loads_matching_weights_and_reports_the_rest(tmp_path):
    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data", n_train=48, n_test=12)
    train(spec, quick(data, epochs=1), out=tmp_path / "first")
    source = tmp_path / "first" / "best.safetensors"
    wider = write_spec(tmp_path, WIDER_HEAD, "wider.cnn")
    result = invoke(
        "train", str(wider), "--init-from", str(source), "--data", str(data), "--epochs", "1", "--out", str(tmp_path / "second")
    )
    assert result.exit_code == 0, result.output
    assert f"initialised 7 of 11 tensors from {source}" in result.output
    assert "wrong shape, skipped: fc1.weight (3×64 in the file, 16×64 here), fc1.bias (3 in the file, 16 here)" in result.output
    assert "missing, left as initialised: fc2.weight, fc2.bias" in result.output


def test_init_from_weights_that_share_nothing(tmp_path):
    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data", n_train=48, n_test=12)
    train(spec, quick(data, epochs=1), out=tmp_path / "first")
    other = write_spec(tmp_path, "network other\ninput 1x8x8\nflatten\nhead: fc 3\n", "other.cnn")
    result = invoke("train", str(other), "--init-from", str(tmp_path / "first" / "best.safetensors"), "--data", str(data))
    assert result.exit_code == 2 and "no tensor in" in result.output and "matches this network by name and shape" in result.output


def test_frozen_layers_keep_their_weights(tmp_path):
    frozen = write_spec(tmp_path, TINY.replace("conv K=4 F=3 P=1", "conv K=4 F=3 P=1 freeze"), "frozen.cnn")
    data = make_npz(tmp_path / "data", n_train=48, n_test=12)
    train(frozen, quick(data, epochs=2), out=tmp_path / "run")
    torch.manual_seed(0)  # the trainer's seed: the weights it started from
    start = specc.load(frozen).to_torch().state_dict()
    after = weights(tmp_path / "run" / "last.safetensors")
    assert torch.equal(after["conv1.weight"], start["conv1.weight"]) and torch.equal(after["conv1.bias"], start["conv1.bias"])
    assert not torch.equal(after["fc1.weight"], start["fc1.weight"])


def test_everything_frozen_is_an_error(tmp_path):
    spec = write_spec(tmp_path, "network still\ninput 1x8x8\nflatten\nfc 3 freeze\n", "still.cnn")
    result = invoke("train", str(spec), "--data", str(make_npz(tmp_path / "data", n_train=48, n_test=12)))
    assert result.exit_code == 1 and "every layer of the network is frozen" in result.output
