"""Every script in examples/ runs as its usage line says, so that none rots."""

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import TORCH

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_the_example_runs(script: Path, tmp_path: Path):
    if not TORCH:
        pytest.skip("the examples build torch modules")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_there_are_examples():
    assert EXAMPLES
