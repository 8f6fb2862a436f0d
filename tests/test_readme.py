"""The README's commands are the ones that really run."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REAL_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
ROOT = Path(__file__).resolve().parent.parent


def _command_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith(("#", "set ", "cd "))]


def test_ci_runs_the_readme_test_command():
    ci = _command_lines((ROOT / ".ci" / "run").read_text())
    readme = (ROOT / "README.md").read_text()
    assert ci, ".ci/run has no command"
    assert "\n".join(ci) in readme, "README's test command and .ci/run differ"


def _main_job(readme: str) -> list[str]:
    """The specc commands of the README's first code block under 'Quick start'."""
    quick_start = readme[readme.index("## Quick start") :]
    block = quick_start[quick_start.index("```bash") + len("```bash") : quick_start.index("```", quick_start.index("```bash") + 7)]
    return [line for line in block.splitlines() if line.startswith(".venv/bin/specc ")]


@pytest.mark.slow
@pytest.mark.skipif(not REAL_FASHION_MNIST.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_the_readme_main_job_trains_exports_and_predicts(tmp_path):
    """The quick start's own commands, in a scratch folder, with the training cut to a fraction of an epoch."""
    commands = _main_job((ROOT / "README.md").read_text())
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
