"""The README's commands are the ones that really run."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import REAL_FASHION_MNIST

ROOT = Path(__file__).resolve().parent.parent


def _quick_start_commands(readme: str) -> list[str]:
    """The README's opening commands: the code blocks under 'Quick start', one line each."""
    quick_start = readme[readme.index("## Quick start") : readme.index("\n## ", readme.index("## Quick start") + 1)]
    blocks = quick_start.split("```bash\n")[1:]
    return [block[: block.index("```")].strip() for block in blocks]


def test_the_readme_opens_with_two_one_line_commands_the_scripts_ci_runs():
    readme = (ROOT / "README.md").read_text()
    assert readme.index("## Quick start") < readme.index("```"), "the quick start is not the first thing shown"
    assert _quick_start_commands(readme) == ["bash examples/quickstart.sh", "bash .ci/run"]
    ci = (ROOT / ".ci" / "run").read_text()
    for step in ("apt-get install", "pip install -q -e '.[test]'", "ruff check", "ruff format --check", "python -m pytest"):
        assert step in ci, step


def _main_job() -> list[str]:
    """The specc commands of examples/quickstart.sh, the README's main job."""
    script = (ROOT / "examples" / "quickstart.sh").read_text()
    return [line for line in script.splitlines() if line.startswith(".venv/bin/specc ")]


@pytest.mark.slow
@pytest.mark.skipif(not REAL_FASHION_MNIST.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_the_readme_main_job_trains_exports_and_predicts(tmp_path):
    """The quick start's own commands, in a scratch folder, with the training cut to a fraction of an epoch."""
    commands = _main_job()
    assert [c.split()[1] for c in commands] == ["train", "export", "predict"]
    for name in ("specs", "examples"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = {k: v for k, v in os.environ.items() if k != "SPECC_DATA"}
    outputs = []
    for command in commands:
        command = command.replace(".venv/bin/specc", f"{shlex.quote(sys.executable)} -m specc", 1)
        if " train " in command:
            command += " --epochs 1 --limit 6000"
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)
    lines = outputs[-1].splitlines()
    for image in sorted((ROOT / "examples" / "images").glob("*.png")):
        assert f"examples/images/{image.name}" in lines
    # the easiest class, named as Fashion-MNIST names it: the top line under the trouser's picture
    top = lines[lines.index("examples/images/trouser.png") + 1].split()
    assert top[0] == "Trouser", outputs[-1]
