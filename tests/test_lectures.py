"""The lecture networks layer for layer: the decks' tables, and the decks' own networks by function.

tests/fixtures/lectures.toml holds each deck's rows as the deck writes them (transcribed, not
computed by specc); `specc check`'s rows must follow them in order. Then each spec's compiled
module must compute what the lecture's network computes: the torch code of tests/reference_nets.py
(lecture 001's nn.Sequential as printed; torch equivalents of lecture 004's Keras model and of
lecture 003's ConvNetJS network) with the weights copied across by position.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from specc.api import load
from specc.cli import main

from . import reference_nets

ROOT = Path(__file__).resolve().parent.parent
LECTURES = tomllib.loads((ROOT / "tests" / "fixtures" / "lectures.toml").read_text(encoding="utf-8"))


def _as_chw(size: list[int], layout: str) -> tuple[int, ...]:
    """A deck's map size in specc's C×H×W order; a 1×1×K volume (ConvNetJS' fc) is K features."""
    if len(size) == 1:
        return tuple(size)
    axes = dict(zip(layout, size, strict=True))
    chw = (axes["C"], axes["H"], axes["W"])
    return chw[:1] if chw[1:] == (1, 1) else chw


def _check_rows(spec: str) -> dict:
    result = CliRunner().invoke(main, ["check", "--json", str(ROOT / "specs" / spec)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("lecture", sorted(LECTURES))
def test_specc_checks_rows_follow_the_decks_table(lecture: str):
    deck = LECTURES[lecture]
    report = _check_rows(deck["spec"])
    rows = iter(report["layers"])
    for want in deck["rows"]:
        got = next(rows)
        while got["kind"] != want["kind"] and got["kind"] in deck["elided"]:
            got = next(rows)
        where = f"{lecture}: deck row {want['deck']!r} against specc's {got['name']}"
        assert got["kind"] == want["kind"], where
        assert tuple(got["output_shape"]) == _as_chw(want["output"], deck["layout"]), where
        assert got["params"] == want["params"], where
    rest = [r["name"] for r in rows if r["kind"] not in deck["elided"]]
    assert not rest, f"{lecture}: specc has layers after the deck's last row: {rest}"
    assert sum(r["params"] for r in deck["rows"]) == deck["total_params"] == report["total_params"]


def _copy_by_position(reference: nn.Module, compiled: nn.Module, input_shape: tuple[int, ...], channels_last_fc: str | None = None) -> None:
    """Load `reference`'s tensors into `compiled`, in order: the same sequence of shapes on both sides.

    Keras and ConvNetJS flatten a channels-last map, specc (as torch) a channels-first one. The
    first fc after the flatten (`channels_last_fc`, its weight's name in the reference) gets the
    same weights with its input columns reordered from (h, w, c) to (c, h, w), the map it reads
    being the compiled module's last C×H×W: then both compute the same function.
    """
    theirs, ours = reference.state_dict(), compiled.state_dict()
    assert [t.shape for t in theirs.values()] == [t.shape for t in ours.values()]
    mapped = {}
    for ours_name, (their_name, tensor) in zip(ours, theirs.items(), strict=True):
        if their_name == channels_last_fc:
            c, h, w = _flattened_map(compiled, input_shape)
            tensor = tensor.reshape(-1, h, w, c).permute(0, 3, 1, 2).reshape(tensor.shape[0], -1)
        mapped[ours_name] = tensor
    compiled.load_state_dict(mapped)


def _flattened_map(compiled: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The C×H×W map that the compiled module's flatten reads."""
    seen = []
    flatten = next(m for m in compiled.modules() if isinstance(m, nn.Flatten))
    handle = flatten.register_forward_hook(lambda m, args, out: seen.append(tuple(args[0].shape[1:])))
    with torch.no_grad():
        compiled(torch.zeros(1, *input_shape))
    handle.remove()
    return seen[0]


def test_lecture_001_sequential_gives_identical_outputs():
    """The deck's nn.Sequential and the compiled spec: the same tensors in the same order, the same outputs, bit for bit."""
    torch.manual_seed(0)
    reference, compiled = reference_nets.lecture_sequential(), load(ROOT / "specs" / "lecture_convnet.cnn").to_torch()
    _copy_by_position(reference, compiled, (3, 32, 32))
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(compiled(x), reference(x))


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # torch's own 'same' is the reference for Keras'
@pytest.mark.parametrize(
    ("spec", "reference"),
    [("keras_mnist.cnn", reference_nets.keras_mnist), ("convnetjs_cifar10.cnn", reference_nets.convnetjs_cifar10)],
    ids=["lecture-004-keras", "lecture-003-convnetjs"],
)
def test_channels_last_lecture_nets_compute_the_same_function(spec: str, reference):
    """Weights copied by position, the first fc's columns reordered from Keras' (h, w, c) to specc's (c, h, w)."""
    torch.manual_seed(0)
    net = load(ROOT / "specs" / spec)
    theirs, ours = reference().eval(), net.to_torch().eval()
    first_fc = next(name for name, m in theirs.named_modules() if isinstance(m, nn.Linear))  # the one after the flatten
    _copy_by_position(theirs, ours, net.input_shape, channels_last_fc=f"{first_fc}.weight")
    x = torch.randn(4, *net.input_shape)
    with torch.no_grad():
        want, got = theirs(x), ours(x)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(want, want[[1, 0, 3, 2]], atol=1e-3)  # the outputs depend on the input, so the check has teeth
    # the same weights without the reordering give another function: the flatten order matters
    _copy_by_position(theirs, ours, net.input_shape)
    with torch.no_grad():
        assert not torch.allclose(ours(x), want, atol=1e-4)
