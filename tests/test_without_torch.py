"""The tests of what needs no torch (check, the language, the errors) run and pass where torch is not installed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import TORCH

HERE = Path(__file__).parent


@pytest.mark.slow
@pytest.mark.skipif(not TORCH, reason="this is the run without torch")
def test_the_torch_free_tests_pass_without_torch():
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(HERE / "without_torch"), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider", str(HERE)]
    done = subprocess.run(command, cwd=HERE.parent, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    passed = int(re.search(r"(\d+) passed", done.stdout).group(1))
    left_out = re.search(r"without torch: (\d+) test modules left out: (.*)", done.stdout)
    assert left_out and "test_train.py" in left_out.group(2), "torch was importable in the run without it"
    assert passed >= 400 and "test_check.py" not in left_out.group(2) and "test_errors.py" not in left_out.group(2)
