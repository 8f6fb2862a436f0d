"""On PYTHONPATH, makes this interpreter (and every process it starts) one where torch is not installed.

tests/test_without_torch.py runs the suite so, to prove that what needs no
torch runs and passes without it; tests/conftest.py leaves out the modules
that need it.
"""

import importlib.abc
import sys

ABSENT = {"torch", "torchvision", "torchinfo", "onnx", "onnxruntime", "onnxscript", "captum", "tensorboard"}


class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ABSENT:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled())
