"""The built wheel works on its own: the grammar ships inside it, and check needs no torch.

Builds the wheel, installs it (without its heavy dependencies) into a fresh venv
next to only what `specc check` imports, and checks a spec from a folder outside
the repository, so that neither the checkout nor the editable install can leak in.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECK_NEEDS = ["lark", "pydantic", "click", "rich"]  # what `specc check` imports; torch is not among them


def run(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=True)


@pytest.mark.slow
def test_the_wheel_checks_a_spec_in_a_fresh_venv(tmp_path: Path):
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "build", "--wheel", "--outdir", dist, ROOT, cwd=ROOT)
    wheel = next(dist.glob("specc-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        shipped = zf.read("specc/_grammar/specc.lark").decode("utf-8")
        assert {"specc/lark_parser.py", "specc/parser_tables.json"} <= set(zf.namelist())  # else check cannot parse
    assert shipped == (ROOT / "grammar" / "specc.lark").read_text(encoding="utf-8")

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", "--no-deps", wheel, cwd=tmp_path)
    run(python, "-m", "pip", "install", "--quiet", *CHECK_NEEDS, cwd=tmp_path)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(ROOT / "specs" / "lenet5.cnn", elsewhere)
    where = run(python, "-c", "import specc; print(specc.__file__)", cwd=elsewhere).stdout.strip()
    assert Path(where).is_relative_to(venv), f"specc came from {where}, not the wheel"
    data = json.loads(run(python, "-m", "specc", "check", "lenet5.cnn", "--json", cwd=elsewhere).stdout)
    assert data["total_params"] == 61706
