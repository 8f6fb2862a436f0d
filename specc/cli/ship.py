"""`specc export`, `specc predict` and `specc bench`: the verbs that ship a network and run it.

`predict` must start without torch: it imports only the ONNX runner.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from .spec import _console, _load


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--weights", type=click.Path(dir_okay=False), help="Trained weights (a .safetensors file from `specc train`).")
@click.option(
    "-o", "--output", "--out", "output", type=click.Path(dir_okay=False), help="The ONNX file to write [default: SPEC's name with .onnx]."
)
@click.option("--opset", type=click.IntRange(min=1), default=18, show_default=True, help="ONNX operator set version.")
def export(spec: str, weights: str | None, output: str | None, opset: int):
    """Write SPEC as one ONNX file, weights inside, checked against torch with onnxruntime."""
    from ..backends.onnx import CHECK_BATCHES, TOLERANCE
    from ..backends.onnx import export as export_onnx
    from ..outputs import refuse_replacing

    label = "-o" if output else "the default output"
    output = output or Path(spec).with_suffix(".onnx").name
    refuse_replacing({label: output}, {"the spec": spec, "--weights": weights})
    net = _load(spec)
    if weights is None:
        click.echo(f"note: no --weights given: exporting {net.name} with random initial weights", err=True)
    result = export_onnx(net, output, weights, opset)
    meta = result.metadata
    diffs = ", ".join(f"{result.max_abs_diff[b]:.2g} at batch {b}" for b in CHECK_BATCHES)
    click.echo(f"wrote {result.path}: {result.size_bytes / 1e6:.2f} MB, opset {result.opset}, {result.nodes} nodes, batch axis dynamic")
    click.echo("onnx.checker: passed")
    tolerance = f"{result.tolerance:.2g}, {TOLERANCE:g} · max(1, largest |output|)"
    click.echo(f"onnxruntime vs torch, largest |difference|: {diffs} (tolerance {tolerance})")
    click.echo(
        f"metadata: {len(json.loads(meta['specc.classes']))} classes, input {meta['specc.input_shape']}, "
        f"mean {meta['specc.mean']}, std {meta['specc.std']}, output {meta['specc.output']}, weights {meta['specc.weights']}"
    )


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("images", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--npz", type=click.Path(dir_okay=False), help="Samples as array x in an .npz file (N×C×H×W, or N×H×W).")
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True, help="How many classes to show per sample.")
@click.option("--resize", is_flag=True, help="Stretch images to the network's input size instead of refusing them.")
@click.option("--json", "as_json", is_flag=True, help="Print the predictions as JSON.")
@click.option(
    "--provider",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="onnxruntime execution provider; auto takes CUDA only where it starts.",
)
def predict(model: str, images: tuple[str, ...], npz: str | None, top: int, resize: bool, as_json: bool, provider: str):
    """Classify IMAGES (PNG, JPEG) or the samples in --npz with MODEL, an ONNX file from `specc export`."""
    from ..errors import printable
    from ..runners.predict import Predictor

    if not images and not npz:  # a command line without its arguments: click's usage error, exit 2
        raise click.UsageError("nothing to classify: name image files, or an .npz file with --npz")
    predictor = Predictor(model, provider)
    predictions = predictor.predict(list(images), top, resize) if images else []
    if npz:
        predictions += predictor.predict_npz(npz, top)
    if as_json:
        results = [p.to_json() for p in predictions]
        click.echo(json.dumps({"model": model, "provider": predictor.provider, "predictions": results}, indent=2))
        return
    # Class names and file names come from files: printed escaped, so that `\x1b[2J` in a name is text, not a cleared screen.
    width = max(len(printable(name)) for name in predictor.classes)
    for prediction in predictions:
        click.echo(printable(prediction.source))
        for name, probability in prediction.top:
            click.echo(f"  {printable(name):<{width}}  {probability:.3f}")


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option(
    "--batch-size",
    "--batch",
    "batch",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Batch for per-layer timings and throughput.",
)
@click.option("--iters", type=click.IntRange(min=1), default=10, show_default=True, help="Timed iterations, after a warm-up.")
@click.option(
    "--threads", type=click.IntRange(min=1), default=None, help="Threads of torch and of onnxruntime [default: the idle cores]."
)
@click.option("-q", "--quiet", is_flag=True, help="Only the tables: no note while measuring.")
def bench(spec: str, batch: int, iters: int, threads: int | None, quiet: bool):
    """Time SPEC on this CPU: per-layer forward and backward, then torch eager against onnxruntime."""
    from ..runners.bench import busy_warning, default_threads, machine_load, measure, tables

    net = _load(spec)
    load, cores = machine_load()
    warning = busy_warning(load, cores)
    if warning:  # before measuring, not after the tables, and even when quiet: the user may rather wait for an idle machine
        click.echo(warning, err=True)
    threads = threads or default_threads(load, cores)
    if not quiet:
        click.echo(f"timing {net.name} (random weights, batch {batch}, {iters} iterations, {threads} threads)...", err=True)
    console = _console()
    for table in tables(measure(net, batch, iters, threads)):
        console.print(table)
