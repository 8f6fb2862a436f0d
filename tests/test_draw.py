"""`specc draw`: the SVG read back with xml.etree and compared with the check report and the network tree.

Every node must be a row of the report (name, kind, shape text), every residual a fork and an add,
every concat a fork and a concat node. Graphviz runs once per picture, in module-scoped fixtures.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

import specc
from specc import draw
from specc.cli import main
from specc.errors import SpeccError
from specc.ir import Group, walk_layers
from specc.shapes import shape_text

ROOT = Path(__file__).parent.parent
SVG = "{http://www.w3.org/2000/svg}"
pytestmark = pytest.mark.skipif(draw.shutil.which("dot") is None, reason="Graphviz's dot is not installed")


@dataclass
class Picture:
    nodes: dict[str, tuple[set[str], str]]  # id -> (classes, its text, one line per <text>)
    edges: dict[tuple[str, str], set[str]]  # (tail, head) -> classes
    clusters: list[str]  # their labels
    xs: dict[str, float]  # node id -> where its label is drawn, left to right
    tooltips: dict[str, str]

    def ids(self, role: str) -> list[str]:
        return [i for i, (classes, _) in self.nodes.items() if role in classes]

    def preds(self, head: str) -> list[str]:
        return [t for t, h in self.edges if h == head]

    def succs(self, tail: str) -> list[str]:
        return [h for t, h in self.edges if t == tail]


def parse(svg: str) -> Picture:
    root = ET.fromstring(svg)
    nodes, edges, clusters, xs, tooltips = {}, {}, [], {}, {}
    for g in root.iter(f"{SVG}g"):
        classes = set(g.get("class", "").split())
        title = g.findtext(f"{SVG}title")
        text = "\n".join(t.text or "" for t in g.iter(f"{SVG}text"))
        if "node" in classes:
            nodes[title] = (classes, text)
            xs[title] = float(next(g.iter(f"{SVG}text")).get("x"))
            link = next(g.iter(f"{SVG}a"), None)
            tooltips[title] = link.get("{http://www.w3.org/1999/xlink}title") if link is not None else None
        elif "edge" in classes:
            tail, head = title.split("->")
            edges[(tail, head)] = classes
        elif "cluster" in classes:
            clusters.append("".join(t.text or "" for t in g.findall(f"{SVG}text")))
    return Picture(nodes, edges, clusters, xs, tooltips)


@pytest.fixture(scope="module")
def resnet18():
    return specc.load(ROOT / "specs/resnet18.cnn")


@pytest.fixture(scope="module")
def full(resnet18) -> Picture:
    return parse(draw.to_svg(resnet18))


@pytest.fixture(scope="module")
def depth1(resnet18) -> Picture:
    return parse(draw.to_svg(resnet18, depth=1))


def groups(nodes, kind: str):
    for node in nodes:
        if isinstance(node, Group):
            yield from [node] if node.kind == kind else []
            yield from groups(node.children, kind)


def test_one_node_per_layer_of_the_check_report(resnet18, full):
    report = resnet18.check()
    assert sorted(full.ids("layer")) == sorted(r.name for r in report.layers)
    assert len(full.ids("layer")) == len(report.layers) == 61  # 4 in the stem, 8 blocks of 6, 3 projections of 2, 3 in the head
    for r in report.layers:
        text = full.nodes[r.name][1]
        assert r.name in text and r.kind in text and shape_text(r.output_shape) in text, (r.name, text)
        assert (f"{r.params:,} params" in text) == (r.params > 0)


def test_the_rest_of_the_row_is_the_tooltip(full, resnet18):
    stem = next(r for r in resnet18.check().layers if r.name == "stem")
    assert full.tooltips["stem"] == f"line {stem.line} · (224 − 7 + 2·3)/2 + 1 = 112.5 → 112 · 118,013,952 MACs · receptive field 7"


def test_arguments_that_differ_from_the_defaults_are_shown_as_written(full):
    assert "conv K=64 F=7 S=2 P=3 bias=false" in full.nodes["stem"][1]
    assert "pool max F=3 S=2 P=1" in full.nodes["pool1"][1]
    assert "pool avg global\n" in full.nodes["pool2"][1]  # the title already says avg and global
    assert "fc K=1000" in full.nodes["fc1"][1] and "bias" not in full.nodes["fc1"][1]
    assert "batchnorm\n" in full.nodes["bn"][1]


def test_every_residual_forks_into_body_and_shortcut_and_joins_at_an_add(resnet18, full):
    residuals = list(groups(resnet18.network.body, "residual"))
    assert len(residuals) == len(full.ids("add")) == 8
    forks = []
    for residual in residuals:
        body = list(walk_layers(residual.children))
        [fork] = full.preds(body[0].name)
        [add] = [h for h in full.succs(body[-1].name) if "add" in full.nodes[h][0]]
        assert "body" in full.edges[(body[-1].name, add)]
        if residual.shortcut_layers:
            first, last = residual.shortcut_layers[0].name, residual.shortcut_layers[-1].name
            assert (fork, first) in full.edges and "shortcut" in full.edges[(last, add)]
            assert "conv K=" in full.nodes[first][1] and "F=1 S=2" in full.nodes[first][1]
        else:
            assert "identity" in full.edges[(fork, add)]
        assert sorted(full.preds(add)) == sorted([body[-1].name, residual.shortcut_layers[-1].name if residual.shortcut_layers else fork])
        assert shape_text(residual.out_shape) in full.nodes[add][1]
        forks.append(fork)
    # each block forks at what came before it: the stem's pool, then the previous block's relu
    assert forks[:3] == ["pool1", "layer1.0.relu2", "layer1.1.relu2"]
    assert sum(bool(r.shortcut_layers) for r in residuals) == 3


def test_blocks_repeats_and_named_groups_are_labelled_clusters(full):
    labels = full.clusters
    assert any(label.startswith("layer1 x2") for label in labels)
    assert any(label.startswith("layer2 seq") for label in labels)
    assert any(label.startswith("layer2.0 basic(128, S=2)") and "230,144 params" in label for label in labels)
    assert len(labels) == 4 + 8  # four stages, eight blocks; the unnamed residuals are drawn as forks, not boxes


def test_depth_1_folds_to_the_blocks_as_check_depth_1_does(resnet18, depth1):
    rows = [r for r in resnet18.check().rows if r.depth <= 1]
    blocks = [r.name for r in rows if r.is_group and r.depth == 1]
    assert sorted(depth1.ids("folded")) == sorted(blocks) and len(blocks) == 8
    assert sorted(depth1.ids("layer")) == sorted(r.name for r in rows if not r.is_group)
    assert depth1.ids("add") == [] and len(depth1.clusters) == 4
    chain = ["pool1", *blocks, "pool2"]
    assert all((a, b) in depth1.edges for a, b in zip(chain, chain[1:], strict=False))
    block = depth1.nodes["layer2.0"][1]
    assert "basic(128, S=2)" in block and "128×28×28" in block and "230,144 params" in block


def test_depth_0_folds_every_top_level_group():
    picture = parse(draw.to_svg(specc.load(ROOT / "specs/resnet18.cnn"), depth=0))
    assert sorted(picture.ids("folded")) == ["layer1", "layer2", "layer3", "layer4"] and picture.clusters == []


def test_concat_branches_fork_and_join_at_a_concat_node():
    net = specc.load(ROOT / "specs/inception_mini.cnn")
    picture = parse(draw.to_svg(net))
    concats = list(groups(net.network.body, "concat"))
    assert len(concats) == len(picture.ids("concat")) == 2
    forks = []
    for concat in concats:
        firsts = [next(walk_layers([b])).name if isinstance(b, Group) else b.name for b in concat.children]
        lasts = [list(walk_layers([b]))[-1].name if isinstance(b, Group) else b.name for b in concat.children]
        [fork] = {p for first in firsts for p in picture.preds(first)}
        [join] = {h for last in lasts for h in picture.succs(last)}
        forks.append(fork)
        assert "concat" in picture.nodes[join][0] and shape_text(concat.out_shape) in picture.nodes[join][1]
        assert sorted(picture.preds(join)) == sorted(lasts)
        assert sorted(firsts, key=picture.xs.get) == firsts, "the branches are not drawn in the spec's order"
    assert forks == ["relu1", "pool1"]  # the stem's relu, then the pool between the two inception blocks
    assert "56×32×32" in picture.nodes[picture.ids("concat")[0]][1]


def test_a_gate_joins_its_body_and_its_input_at_a_multiply_and_split_edges_say_their_slice():
    gate = "gate {\n  pool avg global\n  conv K=4 F=1\n  sigmoid\n}\n"
    text = "input 4x6x6\nconv K=4 F=1\n" + gate + "concat split {\n  conv K=2 F=1\n  conv K=2 F=3 P=1\n}\n"
    picture = parse(draw.to_svg(specc.loads(text)))
    [mul] = picture.ids("multiply")
    assert sorted(picture.preds(mul)) == ["conv1", "sigmoid1"] and "identity" in picture.edges[("conv1", mul)]
    assert picture.preds("pool1") == ["conv1"]
    assert sorted(picture.succs(mul)) == ["conv3", "conv4"]
    dot = draw.to_dot(specc.loads(text))
    assert 'label="slice 1/2"' in dot and 'label="slice 2/2"' in dot


def test_the_cli_writes_every_format_without_torch(tmp_path):
    """One subprocess: each format's magic bytes, and torch never imported by the CLI or by the drawing."""
    outs = {fmt: tmp_path / f"net.{fmt}" for fmt in ("svg", "png", "pdf", "dot")}
    script = (
        "import sys\nfrom specc.cli import main\n"
        + "".join(f"main(['draw', 'specs/resnet18.cnn', '-o', {str(p)!r}, '--depth', '1'], standalone_mode=False)\n" for p in outs.values())
        + "assert not [m for m in sys.modules if m.partition('.')[0] == 'torch'], 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert outs["svg"].read_text().lstrip().startswith("<?xml") and "layer4.1" in outs["svg"].read_text()
    assert outs["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert outs["pdf"].read_bytes()[:5] == b"%PDF-"
    assert outs["dot"].read_text().startswith("digraph resnet18 {")


def test_a_layout_that_fails_or_takes_too_long_is_an_error_not_a_traceback(monkeypatch):
    with pytest.raises(SpeccError, match="Graphviz's dot failed: .*syntax error"):
        draw.layout("digraph {", "svg")
    monkeypatch.setattr(draw, "LAYOUT_TIMEOUT_S", 0.001)
    with pytest.raises(SpeccError, match="more than 0.001 s") as caught:
        draw.layout(draw.to_dot(specc.load(ROOT / "specs/resnet50.cnn")), "svg")
    assert "--depth" in caught.value.render()


def test_a_missing_dot_says_how_to_install_graphviz(tmp_path):
    env = os.environ | {"PATH": str(tmp_path)}  # a folder with no `dot` in it
    out = tmp_path / "net.svg"
    command = [sys.executable, "-m", "specc", "draw", "specs/resnet18.cnn", "-o", str(out)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 1 and "Traceback" not in done.stderr and not out.exists()
    assert "`dot`" in done.stderr and "apt-get install graphviz" in done.stderr and "brew install graphviz" in done.stderr


def test_dot_source_needs_no_graphviz(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    path = draw.write(specc.load(ROOT / "specs/lenet5.cnn"), tmp_path / "lenet.dot")
    assert "digraph" in path.read_text()
    with pytest.raises(SpeccError, match="not installed"):
        draw.to_svg(specc.load(ROOT / "specs/lenet5.cnn"))


def test_the_cli_refuses_an_unknown_format_a_bad_spec_and_replacing_the_spec(tmp_path):
    runner = CliRunner()
    done = runner.invoke(main, ["draw", "specs/lenet5.cnn", "-o", str(tmp_path / "net.jpeg")])
    assert done.exit_code == 1 and "unknown format '.jpeg'" in done.output and ".svg" in done.output
    bad = tmp_path / "bad.cnn"
    bad.write_text("input 3x8x8\nconv K=4 F=9\n")
    done = runner.invoke(main, ["draw", str(bad), "-o", str(tmp_path / "bad.svg")])
    assert done.exit_code == 2 and "bad.cnn:2:12: error" in done.output and not (tmp_path / "bad.svg").exists()
    done = runner.invoke(main, ["draw", str(bad), "-o", str(bad)])
    assert done.exit_code == 2 and "would destroy" in done.output


def test_every_spec_in_the_zoo_draws_one_node_per_layer():
    """DOT source only (no layout): every layer of every spec in specs/ is one node, and frozen ones say so."""
    for path in sorted(ROOT.glob("specs/**/*.cnn")):
        net = specc.load(path)
        declared = dict(re.findall(r'^\t+"?([^"\s]+)"? \[(.*)$', draw.to_dot(net), re.M))  # node id -> its attributes
        layers = net.check().layers
        assert sum("class=layer" in attrs for attrs in declared.values()) == len(layers), path.name
        for layer in layers:
            assert "class=layer" in declared[layer.name], (path.name, layer.name)
            assert ("frozen" in declared[layer.name]) == layer.frozen, (path.name, layer.name)


def test_draw_is_listed_among_the_verbs():
    done = CliRunner().invoke(main, ["--help"])
    assert done.exit_code == 0 and "draw" in done.output
