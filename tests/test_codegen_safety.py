"""Text from outside reaches generated code only as escaped literals: hostile paths and names stay text.

Each payload would create a marker file if it ever ran as code. The generated source must parse,
keep the path as the docstring's text, build with to_torch(), and leave the marker absent, in
process and through `specc compile` and `specc export` on a file of such a name.
"""

from __future__ import annotations

import ast
import linecache
import os
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
import torch

import specc
from specc.backends.python_source import FILE_NAMES

ROOT = Path(__file__).resolve().parent.parent
SPEC = "input 3x8x8\nconv K=4 F=3\nrelu\nstage: seq {\n    conv K=4 F=3 P=1\n}\nflatten\nfc 2\n"


def _payload(marker: Path) -> str:
    return f'__import__("pathlib").Path({str(marker)!r}).touch()'


def hostile_paths(marker: Path) -> dict[str, str]:
    code = _payload(marker)
    return {
        "triple-quotes": f'net""";{code};"""x.cnn',
        "single-triple-quotes": f"net''';{code};'''x.cnn",
        "trailing-quote": f'dir/{code}"',
        "trailing-backslash": "dir\\",
        "windows": "C:\\Users\\me\\net.cnn",
        "unicode-escape": "C:\\Users\\N{BULLET}\\x41\\u0041.cnn",
        "newline": f"net\n{code}\n#.cnn",
        "carriage-return": f"net\r{code}\r.cnn",
        "line-separator": f"net\u2028{code}\u2029x\x85.cnn",
        "controls": "net\x1b[2J\x07\x0b\x0c.cnn",
        "braces": "{net}{0}{{x}}%s%(a)s.cnn",
        "odd-unicode": "réseau/网络/🧠\u200b\u202e/net\ufeff.cnn",
        "lone-surrogate": "net\udcff.cnn",  # how Python decodes a file name that is not UTF-8
        "fullwidth": "ｎｅｔ.cnn",  # names the network; Python reads the class name `Ｎｅｔ` as `Net`
        "ligature": "ﬁlter_ｂａｎｋ.cnn",
    }


PATH_CASES = sorted(hostile_paths(Path("m")))


def _assert_safe(source: str, path: str, marker: Path) -> None:
    tree = ast.parse(source)
    docstring = ast.get_docstring(tree, clean=False)
    assert docstring is not None and f"compiled by specc from {path}. Needs only torch." in docstring
    assert [type(n).__name__ for n in tree.body][:1] == ["Expr"]  # the docstring is one literal, then only the file's own code
    assert not marker.exists()


@pytest.mark.parametrize("case", PATH_CASES)
def test_a_hostile_path_stays_text(case: str, tmp_path: Path):
    marker = tmp_path / "marker"
    path = hostile_paths(marker)[case]
    net = specc.loads(SPEC, path)
    source = net.to_source()
    _assert_safe(source, path, marker)
    model = net.to_torch()
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 2)
    assert model.specc_source == source
    namespace = {"__name__": "__main__"}  # the file run as a script, as `python model.py` would
    exec(compile(source, "model.py", "exec"), namespace)
    assert not marker.exists()


# The grammar lets a name be a word or a number; these are the ones most likely to collide with the file's own names.
NAMES = sorted({"x", "self", "torch", "nn", "F", "identity", "branch", "model", "batch", "print", "exec", "super", *FILE_NAMES})


@pytest.mark.parametrize("name", NAMES)
def test_layer_and_network_names_that_shadow_the_files_own_stay_names(name: str):
    nested = f"{name}: conv K=4 F=1" if name.isidentifier() else "conv K=4 F=1"
    text = (
        f"network {name}\ninput 3x8x8\n{name}: conv K=4 F=3\nrelu\n"
        f"blk: residual {{\n    {nested}\n    relu\n    0: conv K=4 F=1\n}}\n"
        f"cat: concat {{\n    {name}: conv K=2 F=1\n    seq {{\n        import: conv K=2 F=1\n    }}\n}}\n"
        "flatten\nfc 2\n"
    )
    net = specc.loads(text, "names.cnn")
    source = net.to_source()
    ast.parse(source)
    model = net.to_torch()
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 2)
    keys = set(model.state_dict())
    assert {f"{name}.weight", f"blk.{name}.weight", "blk.0.weight", f"cat.{name}.weight", "cat.import.weight"} <= keys


@pytest.mark.parametrize(("path", "cls"), [("ｎｅｔ.cnn", "Net"), ("ｆ.cnn", "FNet"), ("ｅｘｃｅｐｔｉｏｎ.cnn", "ExceptionNet")])
def test_a_class_is_named_as_python_reads_the_name(path: str, cls: str):
    """Python reads identifiers in NFKC form, so `class Ｐｒｉｎｔ` would define `Print`: specc writes that form."""
    model = specc.loads(SPEC, path).to_torch()
    assert type(model).__name__ == cls and f"class {cls}(nn.Module):" in model.specc_source


def test_a_class_name_that_python_reads_as_one_the_file_uses_is_refused():
    with pytest.raises(specc.SpeccError, match="the class name 'ｎｎ' is a name the generated file uses itself"):
        specc.loads(SPEC).to_source("ｎｎ")


def test_keywords_name_nested_layers():
    """A nested name is a ModuleDict key, written as a string literal, so even `class` or `return` may name one."""
    text = "input 3x8x8\nstage: seq {\n    class: conv K=4 F=3\n    return: relu\n    lambda: conv K=4 F=1\n}\nflatten\nfc 2\n"
    model = specc.loads(text).to_torch()
    assert model(torch.randn(1, 3, 8, 8)).shape == (1, 2)
    assert "stage.class.weight" in model.state_dict()


def _raising_forward(model):
    try:
        model(torch.randn(1, 5, 8, 8))  # the wrong channel count: the conv raises inside the generated forward
    except RuntimeError as err:
        return traceback.extract_tb(err.__traceback__)
    raise AssertionError("the forward pass should have failed")


def test_each_build_has_its_own_source_lines_for_tracebacks():
    """Two networks loaded from strings (both '<string>') show their own lines in a traceback."""
    first = specc.loads("input 3x8x8\nconv K=4 F=3\n").to_torch()
    second = specc.loads("input 3x8x8\nrelu\nconv K=6 F=3\n").to_torch()
    frames = [[f for f in _raising_forward(m) if f.filename.startswith("<specc ")][-1] for m in (first, second)]
    assert frames[0].filename != frames[1].filename
    assert "self.conv1(x)" in frames[0].line and "self.conv1(x)" in frames[1].line
    assert frames[0].lineno != frames[1].lineno  # the second forward has the relu line first
    for model, frame in zip((first, second), frames, strict=True):
        assert linecache.getline(frame.filename, frame.lineno) == model.specc_source.splitlines(keepends=True)[frame.lineno - 1]


def test_the_source_file_name_is_one_printable_line():
    net = specc.loads("input 3x8x8\nconv K=4 F=3\n", "a\nb\u2028c.cnn")
    frame = [f for f in _raising_forward(net.to_torch()) if f.filename.startswith("<specc ")][-1]
    assert frame.filename.isprintable() and "a\\nb\\u2028c.cnn" in frame.filename


# ---- the CLI on a file whose name is an attack ------------------------------------------------------

CLI_NAME = 'net""";__import__("os").system("touch PWNED");"""x.cnn'


def _specc(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "specc", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("name", [CLI_NAME, "C:\\Users\\me\\net.cnn", "net\nimport os\n#.cnn"], ids=["quotes", "backslashes", "newlines"])
def test_specc_compile_on_a_hostile_file_name_writes_a_harmless_model_py(name: str, tmp_path: Path):
    (tmp_path / name).write_text(SPEC, encoding="utf-8")
    result = _specc("compile", name, "-o", "model.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    source = (tmp_path / "model.py").read_text(encoding="utf-8")
    assert f"compiled by specc from {name}. Needs only torch." in ast.get_docstring(ast.parse(source), clean=False)
    run = subprocess.run([sys.executable, "model.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "parameters" in run.stdout, run.stderr
    assert not (tmp_path / "PWNED").exists()


def test_specc_export_on_a_hostile_file_name_runs_no_payload(tmp_path: Path):
    (tmp_path / CLI_NAME).write_text(SPEC, encoding="utf-8")
    result = _specc("export", CLI_NAME, "-o", "net.onnx", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "net.onnx").is_file()
    assert not (tmp_path / "PWNED").exists()
