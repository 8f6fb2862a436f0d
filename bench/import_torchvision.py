#!/usr/bin/env python3
"""How close does `specc import` bring torchvision's models back, and what does it cost?

For each model, built with `weights=None` and its biases and batchnorms made random: export it with
a plain `torch.onnx.export`, import the file, and import it again with the module beside it (as
`specc import torchvision:NAME` does). Prints the parameters (and whether the spec's equal
torchvision's), the spec's lines, the export's and the import's seconds and their ratio, and the
largest |difference| from torchvision's outputs on a batch of 2, from the file and from the module,
beside the largest |output| (float32 rounding grows with it). Not a speed race with a target:
the import's share of `specc import torchvision:NAME` beside torch's own export, and its fidelity.

usage: python bench/import_torchvision.py [--size 224] [--models resnet18,resnet50]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from specc.importers import import_onnx  # noqa: E402
from specc.importers.pytorch import import_exported  # noqa: E402
from tests.import_cases import outputs  # noqa: E402
from tests.test_import_torchvision import KWARGS, MODELS  # noqa: E402
from tests.torchvision_models import build, randomise  # noqa: E402  (torchvision beside the CPU torch)


def measure(name: str, size: int, folder: Path) -> str:
    model = randomise(build(name, **KWARGS.get(name, {})))
    shape, path = (3, size, size), folder / f"{name}.onnx"
    start = time.perf_counter()
    torch.onnx.export(model, (torch.randn(1, *shape),), str(path), verbose=False)
    exported = time.perf_counter() - start
    start = time.perf_counter()
    imported = import_onnx(path)
    took = time.perf_counter() - start
    carried = import_exported(model, path, shape, name, f"torchvision:{name}")
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(x).numpy()
    params = sum(p.numel() for p in model.parameters())
    same = "yes" if imported.net.check().total_params == params else "NO"
    lines = len(imported.text.splitlines())
    from_file, from_module = (float(np.abs(outputs(result, x) - want).max()) for result in (imported, carried))
    return (
        f"{name:20} {params:>12,} {same:>5} {lines:>5} {exported:>8.1f} {took:>8.1f} {took / exported:>6.2f}"
        f" {from_file:>10.1e} {from_module:>10.1e} {float(np.abs(want).max()):>9.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated torchvision model names")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    print(f"{args.size}x{args.size} inputs, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'model':20} {'parameters':>12} {'equal':>5} {'lines':>5} {'export s':>8} {'import s':>8} {'ratio':>6}", end="")
    print(f" {'file diff':>10} {'module diff':>10} {'max |out|':>9}")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models.split(","):
            print(measure(name, args.size, Path(folder)), flush=True)


if __name__ == "__main__":
    main()
