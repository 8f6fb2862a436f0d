"""Weights from a safetensors file into a network, matched by name and shape, and one way of saying what does not fit.

Three commands load weights. `specc eval` and `specc export` need every tensor of the network
(`load_strict`); `specc train --init-from` copies what matches and reports the rest
(`load_partial`), since a new head of another width is what fine-tuning does. Both match the
same way and name a mismatch in the same words: missing (the network has it, the file does not),
not in the network (the file has it, the network does not), wrong shape (with both shapes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import InputFileError
from ..shapes import shape_text
from . import checkpoint

SHOWN = 4  # names listed per kind of mismatch in an error; a report lists them all


@dataclass
class Match:
    """How the tensors of a file line up with a network's, by name and shape."""

    path: Path
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    not_in_network: list[str] = field(default_factory=list)
    wrong_shape: list[str] = field(default_factory=list)  # "name (3×64 in the file, 16×64 here)"

    @property
    def fits(self) -> bool:
        return not (self.missing or self.not_in_network or self.wrong_shape)

    def problems(self, shown: int | None = SHOWN) -> str:
        """`missing: a, b; not in the network: c; wrong shape: d (3×4 in the file, 4×4 here)`."""
        parts = [("missing", self.missing), ("not in the network", self.not_in_network), ("wrong shape", self.wrong_shape)]
        return "; ".join(f"{label}: {_few(names, shown)}" for label, names in parts if names)

    def __str__(self) -> str:
        """The report of a partial load: what was copied, then each kind of mismatch and what became of it."""
        total = len(self.loaded) + len(self.missing) + len(self.wrong_shape)
        lines = [f"initialised {len(self.loaded)} of {total} tensors from {self.path}"]
        for label, names in (
            ("missing, left as initialised", self.missing),
            ("not in the network, unused", self.not_in_network),
            ("wrong shape, skipped", self.wrong_shape),
        ):
            if names:
                lines.append(f"  {label}: {', '.join(names)}")
        return "\n".join(lines)


def match(expected: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor], path: Path) -> Match:
    """Line `tensors` (a file's) up with `expected` (a state dict), in the network's order."""
    found = Match(Path(path))
    for name, tensor in expected.items():
        if name not in tensors:
            found.missing.append(name)
        elif tensors[name].shape != tensor.shape:
            found.wrong_shape.append(f"{name} ({_dims(tensors[name].shape)} in the file, {_dims(tensor.shape)} here)")
        else:
            found.loaded.append(name)
    found.not_in_network = [name for name in tensors if name not in expected]
    return found


def read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a weights file, refused if missing, truncated or holding NaN."""
    tensors, meta = checkpoint.load(Path(path))
    refuse_non_finite(tensors, Path(path))
    return tensors, meta


def load_strict(module: nn.Module, path: Path, spec: str, network: str, hint: str, file=None) -> dict[str, str]:
    """Load every tensor of `module` from `path`, or say which do not fit; return the file's metadata.

    `spec` is the path of the spec the weights should fit and `network` its name; `hint` says
    what to do, and the file's own metadata, where it names another network, says more.
    `file` is what `read(path)` gave, where the caller read it first.
    """
    tensors, meta = file or read(path)
    found = match(module.state_dict(), tensors, path)
    if not found.fits:
        trained_for = meta.get("specc.network")
        other = trained_for and trained_for != network
        raise InputFileError(
            f"{path} does not fit {spec}: {found.problems()}",
            hint=f"these weights were trained for network {trained_for!r}; {hint}" if other else hint,
        )
    module.load_state_dict(tensors)
    return meta


def load_partial(module: nn.Module, path: Path) -> Match:
    """Copy the tensors of `path` whose name and shape match into `module`; a file of which none match is an error."""
    tensors, _ = read(path)
    found = match(module.state_dict(), tensors, path)
    if not found.loaded:
        raise InputFileError(
            f"no tensor in {path} matches this network by name and shape ({found.problems()})",
            hint="--init-from takes weights of a network with the same layer names",
        )
    module.load_state_dict({name: tensors[name] for name in found.loaded}, strict=False)
    return found


def refuse_non_finite(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """NaN or infinite weights are a damaged file (or a run that diverged): say so before using them."""
    bad = [name for name, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise InputFileError(
            f"{path} holds NaN or infinite weights ({_few(bad, 3)})",
            hint="the file is damaged, or training diverged: use an earlier checkpoint, or train again with a lower learning rate",
        )


def _dims(shape) -> str:
    return shape_text(tuple(shape)) or "a scalar"


def _few(names: list[str], shown: int | None) -> str:
    if shown is None or len(names) <= shown:
        return ", ".join(names)
    return ", ".join(names[:shown]) + f" and {len(names) - shown} more"
