"""The one weight matcher behind eval, export and --init-from: strict and partial loading, one message form."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from specc.errors import InputFileError
from specc.runners.weights import load_partial, load_strict, match

HINT = "use the spec the weights were trained from"


def small() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 3))


def save(path: Path, tensors: dict[str, torch.Tensor], network: str = "tiny") -> Path:
    save_file({name: t.contiguous() for name, t in tensors.items()}, path, {"specc.network": network})
    return path


def test_the_match_agrees_with_torch_on_missing_and_unexpected_names():
    """torch's own load_state_dict(strict=False) is the reference for which names are missing or extra."""
    module = small()
    tensors = {name: t for name, t in small().state_dict().items() if not name.startswith("1.")}
    tensors["extra.weight"] = torch.zeros(2)
    found = match(module.state_dict(), tensors, Path("w.safetensors"))
    reference = small().load_state_dict(tensors, strict=False)
    # torch forgives a missing batchnorm counter (files from before it existed); specc's files always hold it
    assert [name for name in found.missing if not name.endswith("num_batches_tracked")] == reference.missing_keys
    assert found.not_in_network == reference.unexpected_keys
    assert found.loaded == [name for name in module.state_dict() if name in tensors] and not found.wrong_shape


def test_strict_loading_copies_every_tensor(tmp_path):
    source = small()
    with torch.no_grad():
        source[3].weight.add_(1.0)
    target = small()
    meta = load_strict(target, save(tmp_path / "w.safetensors", source.state_dict()), "tiny.cnn", "tiny", HINT)
    assert meta == {"specc.network": "tiny"}
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), target.state_dict().values(), strict=True))


def test_strict_loading_names_each_kind_of_mismatch_in_one_message(tmp_path):
    tensors = dict(small().state_dict())
    tensors["3.weight"] = torch.zeros(5, 4)  # a head of another width
    del tensors["0.bias"]
    tensors["head.weight"] = torch.zeros(1)
    path = save(tmp_path / "w.safetensors", tensors, network="other")
    before = {name: t.clone() for name, t in small().state_dict().items()}
    target = small()
    with pytest.raises(InputFileError) as raised:
        load_strict(target, path, "tiny.cnn", "tiny", HINT)
    (diagnostic,) = raised.value.diagnostics
    assert diagnostic.message == (
        f"{path} does not fit tiny.cnn: missing: 0.bias; not in the network: head.weight; wrong shape: 3.weight (5×4 in the file, 3×4 here)"
    )
    assert diagnostic.hint == f"these weights were trained for network 'other'; {HINT}"
    assert all(torch.equal(before[name], t) for name, t in target.state_dict().items())  # nothing half-loaded


def test_a_long_list_is_cut_short_in_an_error(tmp_path):
    path = save(tmp_path / "w.safetensors", {"other": torch.zeros(1)})
    with pytest.raises(InputFileError, match=r"missing: 0.weight, 0.bias, 1.weight, 1.bias and 5 more; not in the network: other"):
        load_strict(small(), path, "tiny.cnn", "tiny", HINT)


def test_partial_loading_copies_what_fits_and_reports_the_rest(tmp_path):
    source = small()
    tensors = dict(source.state_dict())
    tensors["3.weight"] = torch.ones(5, 4)
    del tensors["3.bias"]
    tensors["old_head.weight"] = torch.zeros(2)
    target = small()
    report = load_partial(target, save(tmp_path / "w.safetensors", tensors))
    assert report.missing == ["3.bias"] and report.not_in_network == ["old_head.weight"]
    assert report.wrong_shape == ["3.weight (5×4 in the file, 3×4 here)"]
    assert torch.equal(target[0].weight, source[0].weight) and not torch.equal(target[3].weight, torch.ones(3, 4))
    assert str(report).splitlines() == [
        f"initialised 7 of 9 tensors from {tmp_path / 'w.safetensors'}",
        "  missing, left as initialised: 3.bias",
        "  not in the network, unused: old_head.weight",
        "  wrong shape, skipped: 3.weight (5×4 in the file, 3×4 here)",
    ]


def test_partial_loading_of_a_file_that_shares_nothing_is_an_error(tmp_path):
    path = save(tmp_path / "w.safetensors", {"other.weight": torch.zeros(3)})
    with pytest.raises(InputFileError, match="no tensor in .* matches this network by name and shape"):
        load_partial(small(), path)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda path: None, "no such checkpoint file"),
        (lambda path: path.write_bytes(path.with_name("good").read_bytes()[:-40]), "is not a complete safetensors file"),
        (lambda path: save(path, small().state_dict() | {"0.weight": torch.full((4, 1, 3, 3), float("nan"))}), "NaN or infinite"),
    ],
    ids=["missing", "truncated", "nan"],
)
def test_a_file_that_cannot_be_used_is_a_clear_error_for_both_ways(tmp_path, make, message):
    save(tmp_path / "good", small().state_dict())
    path = tmp_path / "w.safetensors"
    make(path)
    for load in (lambda: load_strict(small(), path, "tiny.cnn", "tiny", HINT), lambda: load_partial(small(), path)):
        with pytest.raises(InputFileError, match=message):
            load()
