"""The network as a diagram: the check report's rows as boxes, joined as the tensors flow.

Compute first, draw second: every box shows a row of the check report (`check.row`: name, kind,
output shape, parameters), so the diagram and `specc check` never disagree, and `--depth` folds
groups by the rule `check --depth` uses (`check.shown`). A residual forks at the node before it:
the body and the shortcut (its projection layers, or a straight dashed edge for identity) meet at an
`add` node; concat branches meet at a `concat` node, a gate's body and its input at a `multiply`
node. Blocks, repeats and named groups are labelled clusters.

This module only writes DOT text (the `graphviz` package quotes it); Graphviz's `dot` lays it out, as
for Keras' plot_model, torchview and Caffe's draw_net. No torch here.
"""

from __future__ import annotations

import html
import shutil
import subprocess
import zlib
from pathlib import Path

import graphviz

from .check import Row, row, shown
from .errors import EXIT_FAILURE, SpeccError, UsageError
from .ir import Group, Layer, Node
from .shapes import shape_text

FORMATS = ("svg", "png", "pdf", "dot")
LAYOUT_TIMEOUT_S = 300  # ResNet-50 unfolded takes a fraction of a second; a runaway spec must not hang the terminal
INSTALL_HINT = "install Graphviz: `apt-get install graphviz` (Debian, Ubuntu) or `brew install graphviz` (macOS); see graphviz.org"
# Pastel fills: a kind keeps its colour across networks, picked by its name, so no list of kinds lives here.
PALETTE = ("#dbe9f6", "#e2f0d9", "#fdf2d0", "#f8e0e0", "#ebe1f3", "#dff3f1", "#f3e6d8", "#e9e9e9")
MUTED = "#555555"


def to_dot(net, depth: int | None = None) -> str:
    """The Graphviz source of `net` (a `specc.Net`), groups nested deeper than `depth` folded to one box each."""
    report = net.check()  # a bad spec raises here, with its compiler-style message
    diagram = _Diagram(net.name, depth)
    diagram.draw(net.network.body, report.input_shape)
    return diagram.graph.source


def to_svg(net, depth: int | None = None) -> str:
    """The diagram as SVG text, ready to inline in an HTML page."""
    return layout(to_dot(net, depth), "svg").decode("utf-8")


def write(net, path: str | Path, depth: int | None = None) -> Path:
    """Write the diagram to `path`; its suffix (.svg, .png, .pdf, .dot) picks the format."""
    path = Path(path)
    fmt = output_format(path)
    source = to_dot(net, depth)
    path.write_bytes(source.encode("utf-8") if fmt == "dot" else layout(source, fmt))
    return path


def output_format(path: str | Path) -> str:
    """The format a path's suffix asks for: svg, png, pdf or dot."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise UsageError(
            f"cannot draw to '{path.name}': unknown format '{path.suffix or '(none)'}'",
            hint=f"end the output's name in one of {', '.join('.' + f for f in FORMATS)}, e.g. -o {path.stem or 'net'}.svg",
        )
    return fmt


def layout(source: str, fmt: str) -> bytes:
    """Run Graphviz's `dot` on DOT `source`: the picture in `fmt` (svg, png, pdf)."""
    dot = shutil.which("dot")
    if dot is None:
        raise SpeccError(
            "Graphviz's `dot` program is needed to draw, and it is not installed (or not on PATH)",
            hint=f"{INSTALL_HINT}; `-o net.dot` writes the diagram's source without it",
            exit_code=EXIT_FAILURE,
        )
    try:
        resolution = ["-Gdpi=120"] if fmt == "png" else []  # 96 dpi blurs the 9-point shape lines
        done = subprocess.run([dot, f"-T{fmt}", *resolution], input=source.encode("utf-8"), capture_output=True, timeout=LAYOUT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise SpeccError(
            f"Graphviz took more than {LAYOUT_TIMEOUT_S} s to lay out the diagram",
            hint="fold groups with --depth (e.g. --depth 1 draws each block as one box)",
            exit_code=EXIT_FAILURE,
        ) from None
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SpeccError(
            f"Graphviz's dot failed: {detail[-1] if detail else f'exit code {done.returncode}'}",
            hint="fold groups with --depth, or write -o net.dot and lay it out with another Graphviz engine",
            exit_code=EXIT_FAILURE,
        )
    return done.stdout


class _Diagram:
    """Walks the network tree once, adding a node per shown row; each step returns the id of its output's node.

    Node ids are the layers' (and folded groups') names, which are unique because they name the compiled
    modules; the nodes specc adds (input, joins) have ids starting with '/', which no name contains.
    """

    def __init__(self, name: str, depth: int | None):
        self.depth = depth
        self.graph = graphviz.Digraph(name=name, graph_attr=_GRAPH, node_attr=_NODE, edge_attr=_EDGE)
        self.edges: list[tuple[str, str, dict[str, str]]] = []  # drawn in the root graph, or a cluster would claim both ends
        self.count = 0
        self.home: dict[str, object] = {}  # node id -> the graph or cluster it is drawn in

    def draw(self, body: list[Node], input_shape) -> None:
        tail = self._fresh("input")
        label = _html_label("input", None, shape_text(input_shape))
        self.graph.node(tail, label, shape="box", style="rounded", **{"class": "input"})
        self.sequence(self.graph, body, tail, 0)
        for tail, head, attrs in self.edges:
            self.graph.edge(tail, head, **attrs)

    def sequence(self, graph, nodes: list[Node], tail: str, level: int) -> str:
        for node in nodes:
            tail = self.node(graph, node, tail, level)
        return tail

    def node(self, graph, node: Node, tail: str, level: int) -> str:
        if isinstance(node, Layer):
            return self.box(graph, node.name, row(node, level), tail, "layer", node.kind.name, _arguments(node))
        if not shown(level + 1, self.depth):  # what is inside is folded, as `check --depth` folds its rows
            node_id = node.name if node.scoped else self._fresh("group")
            return self.box(graph, node_id, row(node, level), tail, "folded", "group", "")
        if not node.scoped:
            return self.structure(graph, node, tail, level)
        self.count += 1
        with graph.subgraph(name=f"cluster_{self.count}") as cluster:
            cluster.attr(label=_cluster_label(row(node, level)), **{"class": f"group {node.kind}"})
            return self.structure(cluster, node, tail, level)

    def structure(self, graph, group: Group, tail: str, level: int) -> str:
        if group.kind == "residual":
            return self.residual(graph, group, tail, level)
        if group.kind == "concat":
            return self.concat(graph, group, tail, level)
        if group.kind == "gate":
            body = self.sequence(graph, group.children, tail, level + 1)
            return self.join(graph, "multiply", group, [(body, {"class": "body"}), (tail, dict(_STRAIGHT))])
        return self.sequence(graph, group.children, tail, level + 1)

    def residual(self, graph, group: Group, fork: str, level: int) -> str:
        body = self.sequence(graph, group.children, fork, level + 1)
        shortcut = fork
        for layer in group.shortcut_layers:
            shortcut = self.box(graph, layer.name, row(layer, level + 1), shortcut, "layer", layer.kind.name, _arguments(layer), "shortcut")
        straight = dict(_STRAIGHT) if shortcut == fork else {"class": "shortcut"}
        return self.join(graph, "add", group, [(body, {"class": "body"}), (shortcut, straight)])

    def concat(self, graph, group: Group, fork: str, level: int) -> str:
        ends, heads = [], []
        for i, branch in enumerate(group.children):
            first = len(self.edges)
            ends.append((self.node(graph, branch, fork, level + 1), {"class": "branch"}))
            heads.append(self.edges[first][1])  # the branch's first node: its first edge comes from the fork
            if group.split:  # each branch takes its slice of the channels: the edge says which
                self.edges[first][2]["label"] = f"slice {i + 1}/{len(group.children)}"
        if all(self.home.get(head) is graph for head in heads):
            with graph.subgraph() as rank:  # invisible edges in one rank keep the branches in the spec's order
                rank.attr(rank="same")
                for left, right in zip(heads, heads[1:], strict=False):
                    rank.edge(left, right, style="invis")
        return self.join(graph, "concat", group, ends)

    def box(self, graph, node_id: str, r: Row, tail: str, role: str, kind: str, args: str, edge_role: str = "") -> str:
        details = f"{shape_text(r.output_shape)}" + (f" · {r.params:,} params" if r.params else "")
        if r.frozen:
            details += " · frozen"
        label = _html_label(r.name or r.kind, f"{r.kind} {args}".strip() if r.name else args, details)
        style = "rounded,filled" + (",dashed" if r.frozen else "")
        shape = {"shape": "box3d", "margin": "0.14,0.07"} if role == "folded" else {"shape": "box"}
        graph.node(node_id, label, tooltip=_tooltip(r), style=style, fillcolor=_colour(kind), **shape, **{"class": role})
        self.home[node_id] = graph
        self.edges.append((tail, node_id, {"class": edge_role} if edge_role else {}))
        return node_id

    def join(self, graph, what: str, group: Group, inputs: list[tuple[str, dict[str, str]]]) -> str:
        node_id = self._fresh(what)
        label = _html_label(what, None, shape_text(group.out_shape))
        graph.node(node_id, label, shape="ellipse", style="filled", fillcolor="white", margin="0.02", **{"class": f"join {what}"})
        self.edges.extend((tail, node_id, attrs) for tail, attrs in inputs)
        return node_id

    def _fresh(self, what: str) -> str:
        self.count += 1
        return f"/{what}{self.count}"


_GRAPH = {"rankdir": "TB", "nodesep": "0.2", "ranksep": "0.25", "fontname": "Helvetica", "fontsize": "11", "labeljust": "l"}
_NODE = {"fontname": "Helvetica", "fontsize": "10", "margin": "0.08,0.03", "height": "0.3", "penwidth": "0.8"}
_STRAIGHT = {"class": "shortcut identity", "style": "dashed"}  # the input itself, carried past the body
_EDGE = {"arrowsize": "0.6", "penwidth": "0.8", "fontname": "Helvetica", "fontsize": "8"}


def _arguments(layer: Layer) -> str:
    """The layer's arguments that differ from its kind's defaults, as a spec writes them: `F=3 S=2 bias=false`."""
    said = set(layer.kind.title(layer.args).split())  # `pool avg global` says mode and global already
    texts = (
        _argument(f.name, f.type, f.positional, layer.args.get(f.name))
        for f in layer.kind.fields
        if f.required or layer.args.get(f.name) != f.default
    )
    return " ".join(text for text in texts if text not in said)


def _argument(name: str, kind: str, positional: bool, value) -> str:
    if isinstance(value, bool):
        return name if value and positional else f"{name}={str(value).lower()}"
    if isinstance(value, tuple):
        return f"{name}={'x'.join(map(str, value))}"
    if kind == "word":
        return str(value)
    return f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"


def _html_label(title: str, middle: str | None, details: str) -> str:
    lines = [f"<b>{html.escape(title)}</b>"]
    if middle:
        lines.append(html.escape(middle))
    lines.append(f'<font color="{MUTED}" point-size="9">{html.escape(details)}</font>')
    return "<" + "<br/>".join(lines) + ">"


def _tooltip(r: Row) -> str:
    """The rest of the check table's row, shown on hover in a browser: `line 17 · (224 − 7 + 2·3)/2 + 1 = 112.5 → 112 · ...`."""
    parts = [f"line {r.line}", r.formula or "", f"{r.macs:,} MACs", f"receptive field {r.receptive_field}"]
    return " · ".join(part for part in parts if part)


def _cluster_label(r: Row) -> str:
    params = f" · {r.params:,} params" if r.params else ""
    return "<" + f"<b>{html.escape(r.name)}</b> {html.escape(r.kind)}{params}" + ">"


def _colour(kind: str) -> str:
    return PALETTE[zlib.crc32(kind.encode("utf-8")) % len(PALETTE)]
