"""Where torch is not installed, the test modules that need it are left out, and the rest run.

`specc check` and the language need no torch, so their tests must pass
without it (tests/test_without_torch.py runs the suite that way). A module
that needs torch, onnx or another heavy library fails to import; it is left
out and counted in the summary, and any other import error still fails.
"""

from __future__ import annotations

import importlib
from pathlib import Path

HEAVY = {"torch", "torchvision", "torchinfo", "onnx", "onnxruntime", "onnxscript", "captum", "tensorboard", "safetensors"}
_left_out: list[str] = []


def _torch_is_installed() -> bool:
    try:
        import torch  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


TORCH = _torch_is_installed()


def pytest_ignore_collect(collection_path: Path, config) -> bool | None:
    if TORCH or collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    try:
        importlib.import_module(f"tests.{collection_path.stem}")
    except ModuleNotFoundError as err:
        if (err.name or "").partition(".")[0] in HEAVY:
            _left_out.append(f"{collection_path.name} (needs {err.name})")
            return True
        raise
    return None


def pytest_terminal_summary(terminalreporter) -> None:
    if _left_out:
        terminalreporter.write_line(f"without torch: {len(_left_out)} test modules left out: " + ", ".join(sorted(_left_out)))
