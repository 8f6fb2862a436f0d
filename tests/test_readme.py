"""The README's commands are the ones that really run."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _command_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith(("#", "set ", "cd "))]


def test_ci_runs_the_readme_test_command():
    ci = _command_lines((ROOT / ".ci" / "run").read_text())
    readme = (ROOT / "README.md").read_text()
    assert ci, ".ci/run has no command"
    assert "\n".join(ci) in readme, "README's test command and .ci/run differ"
