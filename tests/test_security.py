"""Attacks on specc from outside its inputs: files planted by another local user, outputs that would replace inputs."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import lark
import pytest

from specc import lark_parser, parse, parser_tables
from specc.errors import SpeccError
from specc.runners.checkpoint import load as load_safetensors

ROOT = Path(__file__).resolve().parent.parent
GRAMMAR = (ROOT / "grammar" / "specc.lark").read_text(encoding="utf-8")
SPEC = ROOT / "specs" / "lenet5.cnn"


def python(code: str, tmpdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmpdir), "TMP": str(tmpdir), "TEMP": str(tmpdir)}
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)


CHECK = "import sys; from specc.cli import run; sys.argv = ['specc', 'check', *sys.argv[1:]]; run()"
# How specc built its parser until it shipped its tables, word for word: lark's cache file name
# hashes the options in the order given.
OLD_PARSER = (
    "import lark; from specc import parse\n"
    "lark.Lark(open('grammar/specc.lark', encoding='utf-8').read(), parser='lalr', lexer='contextual',"
    " maybe_placeholders=True, transformer=parse._ToAst(), cache=True)\n"
)


class Payload:
    """Unpickling this creates the marker file: proof that a planted pickle ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant(tmpdir: Path, marker: Path) -> list[Path]:
    """The payload under every name lark's cache could take for this grammar, user and Python."""
    python(OLD_PARSER, tmpdir).check_returncode()  # lark writes its cache under the exact name it would read
    names = set(tmpdir.glob(".lark_*"))
    digests = [parser_tables.grammar_digest(GRAMMAR), "0" * 64]
    users = {os.environ.get("USER", ""), os.environ.get("LOGNAME", ""), "unknown", "root"}
    for kind in ("cache", "cache_grammar"):
        for user in users:
            for digest in digests:
                names.add(tmpdir / f".lark_{kind}_{user}_{digest}_{sys.version_info[0]}_{sys.version_info[1]}.tmp")
    for name in names:
        # lark's cache file: the grammar's sha256 on a line, then pickles; the first one is loaded unchecked
        name.write_bytes(b"planted\n" + pickle.dumps(Payload(marker)) + pickle.dumps(Payload(marker)))
    return sorted(names)


def test_a_pickle_planted_where_lark_caches_is_never_loaded(tmp_path: Path):
    shared_tmp, marker = tmp_path / "tmp", tmp_path / "payload-ran"
    shared_tmp.mkdir()
    planted = plant(shared_tmp, marker)
    assert any(p.name.startswith(".lark_cache_") for p in planted)

    # The attack works against lark's cache, so that the check below can fail.
    python(OLD_PARSER, shared_tmp)
    assert marker.exists(), "the planted payload did not run even under lark's cache: the test proves nothing"
    marker.unlink()
    plant(shared_tmp, marker)

    done = python(CHECK, shared_tmp, str(SPEC), "--json")
    assert done.returncode == 0, done.stderr
    assert '"total_params": 61706' in done.stdout
    assert not marker.exists(), "specc check ran a pickle planted in the temp folder"
    bad = python(CHECK, shared_tmp, str(ROOT / "tests" / "errors" / "bad_character.cnn"))  # the error path builds the catalogue
    assert bad.returncode == 2 and not marker.exists()


def test_check_works_where_unpickling_raises(tmp_path: Path):
    no_pickle = (
        "import pickle, sys\n"
        "def refuse(*args, **kwargs):\n"
        "    sys.stderr.write('UNPICKLED\\n')  # seen even where a library swallows the error, as lark does\n"
        "    raise AssertionError('pickle used on the load path')\n"
        "pickle.load = pickle.loads = refuse\n"
        "class Refuse(pickle.Unpickler):\n"
        "    def load(self):\n"
        "        refuse()\n"
        "pickle.Unpickler = Refuse\n" + CHECK.replace("; ", "\n")
    )
    done = python(no_pickle, tmp_path, str(SPEC), "--json")
    assert done.returncode == 0 and "UNPICKLED" not in done.stderr, done.stderr
    assert '"total_params": 61706' in done.stdout
    assert not list(tmp_path.iterdir()), "specc check wrote into the temp folder"


def test_the_shipped_parser_is_that_of_the_grammar_and_of_this_lark():
    write_again = "write specc/lark_parser.py and specc/parser_tables.json again with `python grammar/write_tables.py`"
    stored = parser_tables.TABLES.read_text(encoding="utf-8")
    assert f'"grammar_sha256":"{parser_tables.grammar_digest(GRAMMAR)}"' in stored, f"grammar/specc.lark changed: {write_again}"
    assert f'"lark":"{lark.__version__}"' in stored, f"another lark: {write_again}"
    assert parser_tables.RUNTIME.read_text(encoding="utf-8") == parser_tables.runtime(GRAMMAR), f"another lark, or an edit: {write_again}"


def test_the_tables_read_back_as_lark_wrote_them():
    from lark.grammar import Rule
    from lark.lexer import TerminalDef

    data, memo = parser_tables.build(GRAMMAR).memo_serialize([TerminalDef, Rule])
    data["options"] = {k: v for k, v in data["options"].items() if k not in parser_tables._RUNTIME_OPTIONS}
    text = json.dumps(parser_tables._encode({"data": data, "memo": memo}))
    assert json.loads(text, object_hook=parser_tables._decode) == {"data": data, "memo": memo}


def texts() -> list[tuple[str, str]]:
    paths = sorted(glob.glob(str(ROOT / "specs" / "*.cnn")) + glob.glob(str(ROOT / "tests" / "errors" / "*.cnn")))
    return [(Path(p).name, Path(p).read_text(encoding="utf-8")) for p in paths]


def outcome(parser, text: str) -> str:
    try:
        return repr(parser.parse(text if text.endswith("\n") else text + "\n"))
    except Exception as err:  # the same error, at the same place, from both parsers
        return f"{type(err).__name__} {getattr(err, 'line', '')}:{getattr(err, 'column', '')} {sorted(getattr(err, 'expected', []) or [])}"


def test_the_shipped_parser_parses_as_the_grammar_does():
    shipped, built = parse._parser(), parser_tables.build(GRAMMAR, parse._ToAst())
    assert isinstance(shipped, lark_parser.Lark) and shipped.source_path == "<deserialized>", "the shipped parser was not used"
    cases = texts()
    assert len(cases) > 40
    for name, text in cases:
        assert outcome(shipped, text) == outcome(built, text), name


# --- an output never replaces an input ------------------------------------------------------------


def cli(*args: str, cwd: Path | None = None):
    from click.testing import CliRunner

    from specc.cli import main

    with contextlib.chdir(cwd or os.getcwd()):
        return CliRunner().invoke(main, [str(a) for a in args])


def spec_in(folder: Path, name: str = "net.cnn") -> Path:
    path = folder / name
    path.write_bytes(SPEC.read_bytes())
    return path


def weights_in(folder: Path) -> Path:
    from safetensors.torch import save_file

    from specc import load

    path = folder / "W.safetensors"
    save_file({k: v.contiguous() for k, v in load(SPEC).to_torch().state_dict().items()}, str(path))
    return path


def refused(result, *named: str) -> None:
    assert result.exit_code == 2, result.output
    assert "would destroy that input; nothing was written" in result.output and "Traceback" not in result.output
    for name in named:
        assert name in result.output


def untouched(files: dict[Path, bytes], folder: Path, before: set[Path]) -> None:
    for path, content in files.items():
        assert path.read_bytes() == content, f"{path} was changed"
    assert set(folder.iterdir()) == before, "a file was written"


def snapshot(folder: Path, *files: Path) -> tuple[dict[Path, bytes], set[Path]]:
    return {f: f.read_bytes() for f in files}, set(folder.iterdir())


def test_compile_never_writes_over_its_spec(tmp_path: Path):
    spec = spec_in(tmp_path)
    (tmp_path / "sub").mkdir()
    os.symlink(spec, tmp_path / "link.py")
    os.link(spec, tmp_path / "hard.py")
    files, before = snapshot(tmp_path, spec)
    for output in (spec, tmp_path / "sub" / ".." / "net.cnn", "net.cnn", tmp_path / "link.py", tmp_path / "hard.py"):
        result = cli("compile", spec, "-o", output, cwd=tmp_path)
        refused(result, f"-o {Path(output)}", f"the spec {spec}")
        untouched(files, tmp_path, before)
    assert cli("compile", "net.cnn", "-o", "net.py", cwd=tmp_path).exit_code == 0  # another name is written as before
    assert "class " in (tmp_path / "net.py").read_text()


def test_export_never_writes_over_its_spec_or_weights(tmp_path: Path):
    spec, weights = spec_in(tmp_path), weights_in(tmp_path)
    onnx_named_spec = spec_in(tmp_path, "net2.onnx")  # a spec whose default output is itself
    os.link(weights, tmp_path / "hard.onnx")
    files, before = snapshot(tmp_path, spec, weights, onnx_named_spec)
    cases = [
        (["export", spec, "-o", spec], ["-o", "the spec"]),
        (["export", spec, "--weights", weights, "-o", weights], [f"-o {weights}", f"--weights {weights}"]),
        (["export", spec, "--weights", weights, "-o", tmp_path / "hard.onnx"], ["is the same file as --weights"]),
        (["export", "net2.onnx"], ["the default output net2.onnx is the spec net2.onnx"]),
    ]
    for args, named in cases:
        refused(cli(*args, cwd=tmp_path), *named)
        untouched(files, tmp_path, before)


# --- a run directory is new, empty, or specc's own ------------------------------------------------


def users_folder(folder: Path) -> dict[Path, bytes]:
    """A folder of someone's own work, with names that a run writes."""
    folder.mkdir()
    files = {"config.json": b'{"mine": 1}\n', "metrics.jsonl": b"{}\n", "test.json": b"[]\n", "best.safetensors": b"mine", "notes": b"x"}
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return {folder / name: content for name, content in files.items()}


def train_args(tmp_path: Path, out: Path, *more: str) -> list[str]:
    from .helpers import make_npz, write_spec

    data = tmp_path / "data"
    if not data.exists():
        make_npz(data, n_train=48, n_test=12)
    return ["train", str(write_spec(tmp_path)), "--data", str(data), "--epochs", "1", "--batch-size", "16", "--out", str(out), *more]


def test_train_refuses_a_folder_of_the_users_own_files(tmp_path: Path):
    out = tmp_path / "mine"
    files = users_folder(out)
    before = set(out.iterdir())
    result = cli(*train_args(tmp_path, out))
    assert result.exit_code == 2, result.output
    assert f"--out {out} is a folder of other files, not a run directory of specc's" in result.output
    assert "training would overwrite best.safetensors, config.json, metrics.jsonl, test.json; nothing was touched" in result.output
    assert "choose a new or empty folder" in result.output and "--resume" in result.output and "Traceback" not in result.output
    untouched(files, out, before)
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / ".keep").write_text("")
    assert cli(*train_args(tmp_path, hidden)).exit_code == 2  # empty means empty


def test_the_check_comes_before_the_data_is_read(tmp_path: Path):
    from specc.runners.train import preflight, train

    from .helpers import write_spec

    out = tmp_path / "mine"
    users_folder(out)
    spec = write_spec(tmp_path)
    for call in (lambda: train(spec, {"data": str(tmp_path / "no-such-data")}, out=out), lambda: preflight(spec, {}, None, 2, out)):
        with pytest.raises(SpeccError, match="is a folder of other files"):
            call()


def test_train_takes_a_new_or_empty_folder_or_its_own_unfinished_run(tmp_path: Path):
    from specc.runners.rundir import RUN_MARKER

    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli(*train_args(tmp_path, empty)).exit_code == 0
    assert (empty / RUN_MARKER).is_file() and (empty / "test.json").is_file()
    again = cli(*train_args(tmp_path, empty))  # a finished run is continued with --resume, never started over
    assert again.exit_code == 2 and "already holds a run" in again.output and f"--resume {empty}" in again.output

    unfinished = tmp_path / "unfinished"  # a run stopped before its first epoch ended: specc's own files
    unfinished.mkdir()
    for name in (RUN_MARKER, "spec.cnn", "config.json"):
        (unfinished / name).write_text("left by an earlier start\n")
    (unfinished / "last.safetensors").write_bytes(b"stale")
    assert cli(*train_args(tmp_path, unfinished)).exit_code == 0
    assert json.loads((unfinished / "config.json").read_text())["network"] == "tiny"
    assert load_safetensors(unfinished / "last.safetensors")[1]["specc.epoch"] == "1"


def test_train_never_writes_over_its_own_inputs(tmp_path: Path):
    from specc.runners.rundir import RUN_MARKER

    run = tmp_path / "run"
    run.mkdir()
    (run / RUN_MARKER).write_text("")
    init = weights_in(tmp_path)
    os.replace(init, run / "last.safetensors")
    files, before = snapshot(run, run / "last.safetensors")
    result = cli(*train_args(tmp_path, run, "--init-from", str(run / "last.safetensors")))
    assert result.exit_code == 2 and f"the run's file {run / 'last.safetensors'} is --init-from" in result.output, result.output
    untouched(files, run, before)
    spec_there = run / "spec.cnn"
    spec_there.write_text((tmp_path / "tiny.cnn").read_text())
    files, before = snapshot(run, spec_there)
    args = train_args(tmp_path, run)
    args[1] = str(spec_there)
    result = cli(*args)
    assert result.exit_code == 2 and f"is the spec {spec_there}" in result.output
    untouched(files, run, before)
