"""--init-from: start a run from the weights of another, copying every tensor whose name and shape match.

What was skipped (a new head of another width, layers the file lacks) is reported, not an error,
since that is what fine-tuning does; a file of which nothing matches is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from ..errors import InputFileError
from ..shapes import shape_text
from . import checkpoint


@dataclass
class InitReport:
    path: Path
    loaded: list[str] = field(default_factory=list)
    wrong_shape: list[str] = field(default_factory=list)  # "name (shape in the file, shape here)"
    not_in_file: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        total = len(self.loaded) + len(self.wrong_shape) + len(self.not_in_file)
        lines = [f"initialised {len(self.loaded)} of {total} tensors from {self.path}"]
        for label, names in (
            ("skipped, shape differs", self.wrong_shape),
            ("not in the file, left as initialised", self.not_in_file),
            ("in the file but not in this network", self.unused),
        ):
            if names:
                lines.append(f"  {label}: {', '.join(names)}")
        return "\n".join(lines)


def load_matching(module: nn.Module, path: Path) -> InitReport:
    """Copy the tensors of `path` whose name and shape match into `module`; say what was skipped."""
    tensors, _ = checkpoint.load(path)
    own = module.state_dict()
    report = InitReport(path)
    for name, tensor in own.items():
        if name not in tensors:
            report.not_in_file.append(name)
        elif tensors[name].shape != tensor.shape:
            shapes = shape_text(tensors[name].shape) or "scalar", shape_text(tensor.shape) or "scalar"
            report.wrong_shape.append(f"{name} ({shapes[0]} in the file, {shapes[1]} here)")
        else:
            report.loaded.append(name)
    report.unused = [name for name in tensors if name not in own]
    if not report.loaded:
        raise InputFileError(
            f"no tensor in {path} matches this network by name and shape",
            hint="--init-from takes weights of a network with the same layer names",
        )
    module.load_state_dict({name: tensors[name] for name in report.loaded}, strict=False)
    return report
