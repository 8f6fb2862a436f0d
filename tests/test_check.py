"""`specc check`: the shape arithmetic, the figures of every shipped spec, the table, JSON and API.

No torch here: `specc check` must answer without it (one test proves that in a
fresh interpreter). The expected figures live in tests/fixtures/spec_figures.toml.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

import specc
from specc import report as views
from specc import shapes
from specc.cli import main
from specc.errors import SpeccError

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
SPECS = sorted((ROOT / "specs").rglob("*.cnn"))
FIGURES = tomllib.loads((FIXTURES / "spec_figures.toml").read_text(encoding="utf-8"))
REGOLD = os.environ.get("SPECC_REGOLD") == "1"


# ---- shapes.py: pure integer arithmetic ----------------------------------------------------


@pytest.mark.parametrize(
    ("p", "size", "f", "s", "dilation", "pad"),
    [
        ("valid", 32, 5, 1, 1, (0, 0)),
        ("full", 32, 5, 1, 1, (4, 4)),
        ("full", 32, 3, 1, 2, (4, 4)),  # a dilated 3-tap filter spans 5
        ("same", 32, 5, 1, 1, (2, 2)),
        ("same", 28, 2, 1, 1, (0, 1)),  # an even filter: the odd pixel goes after, as Keras and PyTorch
        ("same", 28, 4, 1, 1, (1, 2)),
        ("same", 32, 3, 2, 1, (0, 1)),  # ceil(32/2) = 16 outputs need 33 pixels
        ("same", 33, 3, 2, 1, (1, 1)),
        ("same", 224, 7, 2, 1, (2, 3)),
        ("same", 32, 3, 1, 2, (2, 2)),
        ("same", 5, 1, 4, 1, (0, 0)),  # never negative
        (3, 32, 5, 1, 1, (3, 3)),
    ],
)
def test_resolve_padding(p, size, f, s, dilation, pad):
    assert shapes.resolve_padding(p, size, f, s, dilation) == pad


@pytest.mark.parametrize(
    ("p", "size", "f", "s"),
    [("same", w, f, s) for w in (7, 28, 32, 33) for f in (1, 2, 3, 4, 5) for s in (1, 2, 3)],
)
def test_same_padding_gives_ceil_size_over_stride(p, size, f, s):
    pad = shapes.resolve_padding(p, size, f, s)
    assert shapes.window_output(size, f, s, pad)[0] == -(-size // s)


@pytest.mark.parametrize(
    ("size", "f", "s", "pad", "dilation", "out", "exact"),
    [
        (32, 5, 1, (2, 2), 1, 32, True),
        (32, 2, 2, (0, 0), 1, 16, True),
        (32, 4, 3, (0, 0), 1, 10, False),  # (32 - 4)/3 + 1 = 10.33
        (227, 11, 4, (0, 0), 1, 55, True),  # AlexNet's first conv
        (56, 3, 2, (1, 1), 1, 28, False),  # a ResNet stride-2 conv: 28.5 floors to 28
        (32, 3, 1, (0, 0), 2, 28, True),  # dilation 2: the filter spans 5
        (3, 11, 1, (2, 2), 1, -3, True),  # larger than the padded input: the caller reports it
    ],
)
def test_window_output(size, f, s, pad, dilation, out, exact):
    assert shapes.window_output(size, f, s, pad, dilation) == (out, exact)


@pytest.mark.parametrize(
    ("size", "f", "s", "pad", "lost"),
    [
        (32, 4, 3, (0, 0), 1),  # windows end at pixel 30: the last one is never seen
        (33, 2, 2, (0, 0), 1),
        (35, 3, 2, (0, 0), 0),
        (56, 3, 2, (1, 1), 0),  # only padding is left over
        (56, 1, 2, (0, 0), 0),  # F < S skips pixels by design: no loss reported
        (10, 3, 4, (0, 0), 0),
        (14, 5, 3, (0, 0), 0),
        (15, 5, 3, (0, 0), 1),
    ],
)
def test_dropped_pixels(size, f, s, pad, lost):
    assert shapes.dropped_pixels(size, f, s, pad) == lost


def test_formula_fills_in_the_numbers():
    assert shapes.formula(32, 5, 1, (2, 2)) == "(32 − 5 + 2·2)/1 + 1 = 32"
    assert shapes.formula(28, 2, 1, (0, 1)) == "(28 − 2 + 0+1)/1 + 1 = 28"
    assert shapes.formula(32, 4, 3, (0, 0)) == "(32 − 4 + 2·0)/3 + 1 = 10.3333 → 10"
    assert shapes.formula(32, 3, 1, (0, 0), dilation=2) == "(32 − 5 + 2·0)/1 + 1 = 28"


def test_receptive_field_grows_by_filter_times_jump():
    rf, jump = 1, 1
    for f_eff, s in [(5, 1), (2, 2), (5, 1), (2, 2), (5, 1), (2, 2)]:  # ConvNetJS: conv, pool, three times
        rf, jump = shapes.receptive_field(rf, jump, f_eff, s)
    assert (rf, jump) == (36, 8)
    assert shapes.whole_map(rf, jump, (4, 4)) == 60  # flatten sees the whole 4x4 map
    assert shapes.effective_filter(3, 2) == 5


def test_receptive_fields_of_known_networks():
    """ConvNetJS by hand (above); the ResNet figures commonly quoted for torchvision's models."""
    convnetjs = specc.load(ROOT / "specs/convnetjs_cifar10.cnn").check()
    assert [r.receptive_field for r in convnetjs.layers][:9] == [5, 5, 6, 14, 14, 16, 32, 32, 36]
    for name, rf in (("resnet18", 435), ("resnet50", 427)):
        rows = specc.load(ROOT / f"specs/{name}.cnn").check().layers
        assert next(r for r in rows if r.name.startswith("pool") and "global" in r.kind).receptive_field > rf
        assert [r for r in rows if r.name.startswith("layer4")][-1].receptive_field == rf


# ---- every spec in specs/ reproduces its figures --------------------------------------------


def test_every_spec_has_figures():
    assert sorted(FIGURES) == sorted(p.stem for p in SPECS)


@pytest.mark.parametrize("spec", SPECS, ids=[p.stem for p in SPECS])
def test_spec_figures(spec: Path):
    want = FIGURES[spec.stem]
    # strict: no shipped spec drops pixels, but those whose fixture names the warnings it expects
    report = specc.load(spec).check(strict="warnings" not in want)
    assert report.total_params == want["total_params"]
    assert report.trainable_params == want.get("trainable_params", want["total_params"])
    if "total_macs" in want:
        assert report.total_macs == pytest.approx(want["total_macs"], rel=want.get("macs_tolerance", 0))
    assert list(report.output_shape) == want["output_shape"]
    rows = {row.name: row for row in report.layers}
    assert {name: rows[name].params for name in want.get("params", {})} == want.get("params", {})
    assert {name: list(rows[name].output_shape) for name in want.get("shapes", {})} == want.get("shapes", {})


@pytest.mark.parametrize("spec", SPECS, ids=[p.stem for p in SPECS])
def test_spec_says_what_it_is(spec: Path):
    text = spec.read_text(encoding="utf-8")
    assert text.startswith("# "), "every spec starts with a comment saying what it is and where it comes from"
    said = [w.message for w in specc.load(spec).check().warnings]
    assert said == FIGURES[spec.stem].get("warnings", []), "a shipped spec warns only where its fixture says why"


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_resnets_are_short_and_copy_no_block_bodies(name):
    lines = (ROOT / f"specs/{name}.cnn").read_text(encoding="utf-8").splitlines()
    assert len(lines) < 60
    assert sum(line.strip().startswith("residual") for line in lines) == 1


# ---- the command line: table, JSON, depth --------------------------------------------------


def cli(*args: str):
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_json_keys_and_values():
    result = cli("check", "--json", str(ROOT / "specs/convnetjs_cifar10.cnn"))
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert {"network", "input_shape", "output_shape", "total_params", "trainable_params", "total_macs", "layers"} <= set(data)
    assert (data["network"], data["input_shape"], data["output_shape"]) == ("convnetjs_cifar10", [3, 32, 32], [10])
    assert (data["total_params"], data["trainable_params"], data["frozen_params"]) == (22466, 22466, 0)
    first = data["layers"][0]
    assert {"name", "kind", "line", "output_shape", "params", "macs", "receptive_field"} <= set(first)
    assert first == first | {"name": "conv1", "kind": "conv", "line": 5, "output_shape": [16, 32, 32], "params": 1216}
    assert first["formula"] == "(32 − 5 + 2·2)/1 + 1 = 32"
    assert first["macs"] == 1216 * 32 * 32 and first["receptive_field"] == 5
    assert data["total_macs"] == sum(layer["macs"] for layer in data["layers"])


def test_json_of_a_frozen_layer():
    data = json.loads(cli("check", "--json", str(ROOT / "specs/zoo_tour.cnn")).stdout)
    assert (data["trainable_params"], data["frozen_params"]) == (74410, 192)
    assert [layer["name"] for layer in data["layers"] if layer["frozen"]] == ["stem", "stem_bn"]


def table_text(report, depth=None) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(views.table(report, depth, 200), soft_wrap=True)
    console.print(views.totals(report), highlight=False, soft_wrap=True)
    return console.file.getvalue()


def test_depth_folds_groups_into_their_row():
    report = specc.load(ROOT / "specs/resnet18.cnn").check()
    full, top, one = table_text(report), table_text(report, 0), table_text(report, 1)
    assert "layer1.0.conv1" in full and "layer1.0.conv1" not in one and "layer1.0.conv1" not in top
    assert "basic(128, S=2)" in one and "basic(128, S=2)" not in top
    assert "layer2" in top and "11,689,512" in top
    assert full.count("\n") > one.count("\n") > top.count("\n")


def test_depth_on_the_command_line():
    result = cli("check", "--depth", "0", str(ROOT / "specs/resnet50.cnn"))
    assert result.exit_code == 0 and "layer3" in result.stdout and "layer3.0" not in result.stdout
    assert "25,557,032" in result.stdout


@pytest.mark.parametrize("name", ["convnetjs_cifar10", "inception_mini"])
def test_table_golden(name):
    """The whole table, as `specc check` prints it to a pipe; regenerate with SPECC_REGOLD=1."""
    text = table_text(specc.load(ROOT / f"specs/{name}.cnn").check())
    golden = FIXTURES / f"{name}.table"
    if REGOLD:
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def test_totals_line():
    text = views.totals(specc.load(ROOT / "specs/resnet50.cnn").check())
    assert "25,557,032 (25,557,032 trainable, 0 frozen)" in text
    assert "4,089,238,376 (4.089 GMACs, ≈8.178 GFLOPs)" in text
    small = views.totals(specc.loads("input 1x4x4\nconv K=4 F=3\n").check())
    assert "MACs        160 (160 MACs, ≈320 FLOPs)" in small


# ---- the Python API ----------------------------------------------------------------------


def test_api_rows_and_totals_are_plain_objects():
    net = specc.load(ROOT / "specs/keras_mnist.cnn")
    report = net.check()
    assert isinstance(report, specc.Report) and all(isinstance(r, specc.Row) for r in report.rows)
    assert (net.name, net.input_shape, report.output_shape) == ("keras_mnist", (1, 28, 28), (10,))
    conv1 = report.layers[0]
    assert (conv1.name, conv1.kind, conv1.line, conv1.output_shape, conv1.params) == ("conv1", "conv", 8, (16, 28, 28), 80)
    assert conv1.formula == "(28 − 2 + 0+1)/1 + 1 = 28"
    assert report.total_params == sum(r.params for r in report.layers) == 1134426
    assert report.param_mb == pytest.approx(1134426 * 4 / 1e6)


def test_groups_sum_their_layers():
    report = specc.load(ROOT / "specs/resnet18.cnn").check()
    layer2 = next(r for r in report.rows if r.is_group and r.name == "layer2")
    assert layer2.params == sum(r.params for r in report.layers if r.name.startswith("layer2."))
    assert layer2.output_shape == (128, 28, 28)


def test_strict_turns_warnings_into_errors():
    net = specc.loads("network w\ninput 3x32x32\nconv K=8 F=4 S=3\n", "w.cnn")
    assert [w.message.split(":")[0] for w in net.check().warnings] == ["conv does not tile its input"]
    with pytest.raises(SpeccError, match="does not tile"):
        net.check(strict=True)


def test_check_does_not_import_torch():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "import specc.cli\n"
        f"result = CliRunner().invoke(specc.cli.main, ['check', '--json', {str(ROOT / 'specs/resnet50.cnn')!r}])\n"
        "assert result.exit_code == 0, result.output\n"
        "assert '25557032' in result.output\n"
        "import specc; specc.load(" + repr(str(ROOT / "specs/zoo_tour.cnn")) + ").check()\n"
        "assert 'torch' not in sys.modules, 'specc check imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
