"""`specc report RUN_DIR`: a run on one self-contained HTML page, the ConvNetJS demo page for the user's network.

The page gathers the spec, its check table, the diagram, the curves, the
confusion matrix and mistakes, the first conv's filters, and for a few test
images their top classes, occlusion, saliency, Grad-CAM and feature maps; then
a strip of test images with their top-3 predictions. Every picture is a data:
URI, so the file opens anywhere without a network or the run directory.

`specc train --report` keeps it in the run directory (LiveReport): refreshed
after each epoch with that epoch's weights (the page reloads itself while the
run goes on), complete at the end with the best weights and the test figures. A refresh draws only
what is cheap (the curves, the filters, the top-3 strip: one figure and one batch forward; the diagram
once); the per-image explanations are drawn once, at the end. For specs/fashion.cnn on a shared, busy
2-core CPU: 2 to 3 s per refresh, 21 s for the final page (0.5 s and 12 s for tests/helpers.TINY).
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch

from ..shapes import shape_text
from . import Settings, sample_pictures
from .model import Explainer
from .samples import Sample

EXPLAINED = 4  # test images explained in full
STRIP = 24  # test images shown with their top-3 classes
LIVE_RELOAD_S = 20  # how often an open page reloads while training runs

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85em; } td, th { padding: 2px 8px; text-align: right; }
td:first-child, th:first-child, td:nth-child(2) { text-align: left; } tr:nth-child(even) { background: #f4f4f4; }
img { max-width: 100%; } .note { color: #666; font-size: 0.9em; }
.strip { display: flex; flex-wrap: wrap; gap: 10px; } .card { width: 170px; font-size: 0.75em; }
.card img { width: 64px; image-rendering: pixelated; } .bar { background: #4a7fc1; height: 6px; }
.right { color: #2a8a2a; } .wrong { color: #b22; }
"""


def build(
    run_dir: Path, explainer: Explainer | None, explained: list[Sample], strip: list[Sample], live: bool = False, progress=None
) -> str:
    """The page's HTML. `explainer` None (a network that is not a classifier): spec, table and curves only."""
    run_dir = Path(run_dir)
    net = explainer.net if explainer is not None else _load_net(run_dir)
    parts = [_header(run_dir, net.name, live), _spec(net), _table(net), _diagram(net), _images(run_dir)]
    if explainer is not None:
        parts.append(_filters(explainer))
        parts.append(_strip(explainer, strip))
        parts.append(_explained(explainer, explained, progress) if not live else _LATER)
    head = f'<meta http-equiv="refresh" content="{LIVE_RELOAD_S}">' if live else ""
    title = html.escape(f"{net.name}: specc report")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">{head}<title>{title}</title>'
        f"<style>{_STYLE}</style></head>\n<body>\n{''.join(parts)}\n</body></html>\n"
    )


def write(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # a browser reloading the page never reads half of it


def report(run_dir: str | Path, out: str | Path, indices: list[int] | None = None, device: str = "cpu", progress=None) -> Path:
    """report.html of a finished run: its best weights on test samples `indices` (default the first four)."""
    from ..errors import InputFileError
    from ..runners.rundir import saved_config
    from .samples import from_test_split, test_split

    run_dir = Path(run_dir)
    if not (run_dir / "best.safetensors").is_file() or not (run_dir / "spec.cnn").is_file():
        raise InputFileError(
            f"{run_dir} is not a run directory with weights (no spec.cnn and best.safetensors)", hint="`specc train` writes one"
        )
    explainer = Explainer.open(run_dir / "spec.cnn", run_dir / "best.safetensors", device)
    test = test_split(saved_config(run_dir).get("data"), explainer.input_shape)
    explained = from_test_split(test, indices if indices is not None else list(range(min(EXPLAINED, len(test)))))
    strip = from_test_split(test, list(range(min(STRIP, len(test)))))
    page = build(run_dir, explainer, explained, strip, progress=progress)
    write(Path(out), page)
    return Path(out)


class LiveReport:
    """report.html in the run directory, a watcher of train.py's run (`specc train --report`)."""

    def epoch(self, run, row) -> None:
        self._write(run, live=True)

    def finish(self, run, test) -> None:
        self._write(run, live=False)  # the module holds the best weights now (the last ones without a test split)

    def _write(self, run, live: bool) -> None:
        explainer, samples = None, []
        if run.data.task.kind == "classes":
            explainer = Explainer(run.net, run.learner.module, run.data.classes, run.data.mean, run.data.std, run.device)
            split = next((name for name in ("test", "val") if name in run.data.x), None)  # a run may hold neither
            if split is not None:
                x, y = run.data.x[split][:STRIP].cpu().float(), run.data.y[split][:STRIP].cpu()
                samples = [Sample(f"{split} {i}", x[i], int(y[i])) for i in range(len(x))]
        try:
            write(run.run_dir / "report.html", build(run.run_dir, explainer, samples[:EXPLAINED], samples, live))
        finally:
            run.learner.module.train()  # the explainer put it in eval mode; the next epoch trains


# ---- sections -------------------------------------------------------------------------


def _header(run_dir: Path, network: str, live: bool) -> str:
    lines = []
    metrics = [json.loads(line) for line in _read(run_dir / "metrics.jsonl").splitlines() if line.strip()]
    if metrics:
        lines.append(f"{len(metrics)} epochs trained; last: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics[-1].items() if _number(v)))
    test = _read(run_dir / "test.json")
    if test:
        record = json.loads(test)
        figures = ", ".join(f"{k} {record[k]:.4f}" for k in ("accuracy", "auc", "f1", "mae", "mean_iou", "loss") if _number(record.get(k)))
        lines.append(f"test ({record.get('count', '?')} samples, weights of epoch {record.get('epoch')}): {figures}")
    if live:
        lines.append(f"training is running: this page shows the latest epoch's weights and reloads every {LIVE_RELOAD_S} s")
    notes = "".join(f'<p class="note">{html.escape(line)}</p>' for line in lines)
    return f'<h1>{html.escape(network)}</h1><p class="note">run directory {html.escape(str(run_dir))}</p>{notes}'


def _spec(net) -> str:
    return f"<h2>The spec</h2><pre>{html.escape(net.source.text)}</pre>"


def _table(net) -> str:
    from ..report import human, to_json

    summary = to_json(net.check())
    head = "".join(f"<th>{h}</th>" for h in ("name", "kind", "line", "output", "params", "MACs", "receptive field"))
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(v))}</td>"
            for v in (
                r["name"],
                r["kind"],
                r["line"],
                shape_text(r["output_shape"]),
                f"{r['params']:,}",
                f"{r['macs']:,}",
                r["receptive_field"],
            )
        )
        + "</tr>"
        for r in summary["layers"]
    )
    params = f"{summary['total_params']:,} parameters ({summary['trainable_params']:,} trainable)"
    totals = f"{params}, {human(summary['total_macs'], 'MACs')} per sample"
    return f'<h2>Layers (specc check)</h2><table><tr>{head}</tr>{rows}</table><p class="note">{totals}</p>'


_DIAGRAMS: dict[str, str] = {}  # spec text -> its section: a live page refreshed each epoch runs `dot` once


def _diagram(net) -> str:
    if net.source.text not in _DIAGRAMS:
        _DIAGRAMS[net.source.text] = _draw_diagram(net)
    return _DIAGRAMS[net.source.text]


def _draw_diagram(net) -> str:
    try:
        from ..draw import to_svg  # specc draw, where it is installed with Graphviz's dot
    except ImportError:
        return ""
    try:
        svg = to_svg(net)
    except Exception as err:  # noqa: BLE001 - a missing `dot` leaves the page without its diagram, not without the rest
        return f'<h2>Diagram</h2><p class="note">no diagram: {html.escape(str(err).splitlines()[0])}</p>'
    return f"<h2>Diagram</h2>{_img(svg.encode(), 'the network as a diagram', 'image/svg+xml')}"


def _images(run_dir: Path) -> str:
    parts = []
    for name, title in (
        ("curves.png", "Training curves"),
        ("confusion.png", "Confusion matrix"),
        ("mistakes.png", "The most confident mistakes"),
    ):
        if (run_dir / name).is_file():
            parts.append(f"<h2>{title}</h2>{_img((run_dir / name).read_bytes(), title)}")
    return "".join(parts)


_LATER = '<h2>Test images explained</h2><p class="note">occlusion, saliency, Grad-CAM and feature maps appear when training ends</p>'


def _filters(explainer: Explainer) -> str:
    from . import pictures

    layer, weights = explainer.first_filters()
    return f"<h2>What the first layer learned</h2>{_img(pictures.png(pictures.filter_grid(weights, layer)), 'filters')}"


def _explained(explainer: Explainer, samples: list[Sample], progress: Callable[[], None] | None) -> str:
    from . import pictures

    parts = []
    for sample in samples:
        parts.append(f"<h2>Test image: {html.escape(sample.name)}</h2>")
        for name, figure in sample_pictures(explainer, sample, Settings(top=3)):
            parts.append(_img(pictures.png(figure), f"{sample.name}: {name}"))
        if progress is not None:
            progress()
    return "".join(parts)


def _strip(explainer: Explainer, samples: list[Sample]) -> str:
    if not samples:
        return ""
    probabilities = explainer.probabilities(torch.stack([s.x for s in samples]))
    cards = []
    for sample, p in zip(samples, probabilities, strict=True):
        values, indices = p.topk(min(3, len(explainer.classes)))
        right = sample.label is not None and int(indices[0]) == sample.label
        bars = "".join(
            f'<div>{html.escape(explainer.classes[i])} {v:.0%}</div><div class="bar" style="width:{v * 100:.0f}%"></div>'
            for v, i in zip(values.tolist(), indices.tolist(), strict=True)
        )
        truth = f"true: {html.escape(explainer.classes[sample.label])}" if sample.label is not None else ""
        verdict = "right" if right else "wrong" if sample.label is not None else ""
        cards.append(f'<div class="card">{_img(_pixels_png(sample.x), sample.name)}<div class="{verdict}">{truth}</div>{bars}</div>')
    return f'<h2>Test images and their top 3 classes</h2><div class="strip">{"".join(cards)}</div>'


# ---- small helpers ----------------------------------------------------------------------


def _img(data: bytes, alt: str, mime: str = "image/png") -> str:
    return f'<p><img alt="{html.escape(alt)}" src="data:{mime};base64,{base64.b64encode(data).decode()}"></p>'


def _pixels_png(x: torch.Tensor) -> bytes:
    from PIL import Image

    pixels = (x.clamp(0, 1) * 255).round().byte()
    image = Image.fromarray(pixels[0].numpy()) if x.shape[0] != 3 else Image.fromarray(pixels.permute(1, 2, 0).numpy())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _load_net(run_dir: Path):
    from ..api import load

    net = load(run_dir / "spec.cnn")
    net.check()
    return net
