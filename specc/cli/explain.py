"""`specc explain` and `specc report`: pictures of what a trained network learned, and a run on one page."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from ..errors import UsageError


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.argument("images", nargs=-1, type=click.Path(dir_okay=False))
@click.option(
    "--weights", required=True, type=click.Path(dir_okay=False), help="A weights file of a run, e.g. runs/<dir>/best.safetensors."
)
@click.option("--npz", type=click.Path(dir_okay=False), help="Explain the samples of this .npz file's x (labels from its y).")
@click.option("--samples", help="Explain these test samples of the data, by index: 0,5,9 or 0-9.")
@click.option("--data", help="Data whose test split --samples picks from; default $SPECC_DATA, then the installed Fashion-MNIST.")
@click.option("--layer", help="Draw the feature maps of this layer only (default: each conv, after its activation).")
@click.option(
    "--window", type=click.IntRange(min=1), help="Occlusion: the side of the greyed-out square (default: a quarter of the image)."
)
@click.option("--stride", type=click.IntRange(min=1), help="Occlusion: its step (default: half the window).")
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True, help="Classes shown as bars.")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Folder for the PNGs.")
def explain(spec, images, weights, npz, samples, data, layer, window, stride, top, out):
    """Draw what SPEC with WEIGHTS learned and how it sees IMAGES (or --npz, or --samples).

    Writes filters.png (the first conv's filters), and per image NAME-top.png
    (its top classes), NAME-attribution.png (occlusion, saliency and Grad-CAM
    for its true class, else the top one) and NAME-features-LAYER.png.
    """
    from ..explain import Explainer, Settings
    from ..explain import explain as draw
    from ..explain.samples import from_images, from_npz, from_test_split, parse_indices, test_split
    from ..outputs import refuse_replacing

    given = [name for name, value in (("IMAGE", images), ("--npz", npz), ("--samples", samples)) if value]
    if len(given) != 1:
        raise UsageError(
            "give the images to explain one way: IMAGE files, --npz FILE or --samples INDICES"
            + (f" (not {' and '.join(given)})" if given else ""),
            hint="e.g. specc explain net.cnn --weights best.safetensors --samples 0,5,9 -o pictures",
        )
    indices = parse_indices(samples) if samples else []  # a typo is told before anything is loaded
    inputs = {"the spec": spec, "--weights": weights, "--npz": npz} | {f"image {image}": image for image in images}
    refuse_replacing([(f"the picture {name}", Path(out) / name) for name in _planned(images)], inputs)
    explainer = Explainer.open(spec, weights)
    shape = explainer.input_shape
    if images:
        chosen = from_images(list(images), shape)
    elif npz:
        chosen = from_npz(npz, shape)
    else:
        chosen = from_test_split(test_split(data, shape), indices)
    with progress_bar("explaining", len(chosen)) as advance:
        written = draw(explainer, chosen, out, Settings(layer, window, stride, top), advance)
    click.echo(f"wrote {len(written)} pictures of {len(chosen)} sample{'s' if len(chosen) != 1 else ''} into {out}")


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("-o", "--out", type=click.Path(dir_okay=False), help="The HTML file (default RUN_DIR/report.html).")
@click.option("--samples", help="Test samples explained in full, by index: 0,5,9 or 0-9 (default 0-3).")
def report(run_dir, out, samples):
    """One self-contained HTML page of the run in RUN_DIR: spec, layers, diagram, curves, confusion, filters, maps, predictions."""
    from ..explain.page import EXPLAINED
    from ..explain.page import report as write_report
    from ..explain.samples import parse_indices
    from ..outputs import refuse_replacing

    indices = parse_indices(samples) if samples else None
    out = out or str(Path(run_dir) / "report.html")
    run_files = ("spec.cnn", "best.safetensors", "config.json", "metrics.jsonl", "test.json", "curves.png", "confusion.png")
    refuse_replacing({"-o": out}, {f"the run's {name}": Path(run_dir) / name for name in run_files})
    with progress_bar("explaining", len(indices) if indices else EXPLAINED) as advance:
        path = write_report(run_dir, out, indices, progress=advance)
    click.echo(f"wrote {path}")


def _planned(images) -> list[str]:
    """The PNG names an input image could collide with: filters.png and the per-image ones (a lower bound)."""
    from ..explain import _slug

    return ["filters.png"] + [f"{_slug(Path(image).stem)}-{part}.png" for image in images for part in ("top", "attribution")]


@contextlib.contextmanager
def progress_bar(what: str, total: int):
    """A rich bar on a terminal for many images; elsewhere (pipes, CI) nothing."""
    if total < 2 or not sys.stderr.isatty():
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=True
    ) as bar:
        task = bar.add_task(what, total=total)
        yield lambda: bar.advance(task)
