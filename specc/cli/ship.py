"""`specc export`, `specc predict` and `specc bench`: the verbs that ship a network and run it.

`predict` must start without torch: it imports only the ONNX runner.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..shapes import shape_text
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
    from ..outputs import refuse_replacing
    from ..runners.export import export as export_onnx

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
        f"metadata: task {meta['specc.task']}, {len(json.loads(meta['specc.classes']))} classes, input {meta['specc.input_shape']}, "
        f"mean {meta['specc.mean']}, std {meta['specc.std']}, output {meta['specc.output']}, weights {meta['specc.weights']}"
    )


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("images", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--npz", type=click.Path(dir_okay=False), help="Samples as array x in an .npz file (N×C×H×W, or N×H×W).")
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True, help="How many classes to show per sample.")
@click.option("--resize", is_flag=True, help="Stretch images to the network's input size instead of refusing them.")
@click.option("--json", "as_json", is_flag=True, help="Print the predictions as JSON.")
@click.option("--out", "out", type=click.Path(file_okay=False), help="Segmentation: write each class mask as a PNG into this folder.")
@click.option(
    "--provider",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="onnxruntime execution provider; auto takes CUDA only where it starts.",
)
def predict(model: str, images: tuple[str, ...], npz: str | None, top: int, resize: bool, as_json: bool, out: str | None, provider: str):
    """Run MODEL, an ONNX file from `specc export`, on IMAGES (PNG, JPEG) or the samples in --npz.

    What it prints follows the network's task: the top classes, the probability of the positive
    class, each label's probability, the values, or each class's pixels in the segmentation map.
    """
    from ..runners.predict import Predictor

    if not images and not npz:  # a command line without its arguments: click's usage error, exit 2
        raise click.UsageError("nothing to classify: name image files, or an .npz file with --npz")
    predictor = Predictor(model, provider)
    if out and predictor.task != "segmentation":
        raise click.UsageError(f"--out writes segmentation masks, but {predictor.network} is a {predictor.task} network")
    predictions = predictor.predict(list(images), top, resize) if images else []
    if npz:
        predictions += predictor.predict_npz(npz, top)
    masks = _write_masks(predictions, Path(out), [model, npz, *images]) if out else []
    if as_json:
        results = [p.to_json() | ({"mask": str(m)} if masks else {}) for p, m in zip(predictions, masks or predictions, strict=True)]
        click.echo(json.dumps({"model": model, "provider": predictor.provider, "task": predictor.task, "predictions": results}, indent=2))
        return
    for line in _lines(predictor, predictions, masks):
        click.echo(line)


def _lines(predictor, predictions, masks: list[Path]):
    """The predictions as text: a line per source, then its classes, labels or values."""
    from ..errors import printable
    from ..runners.readings import THRESHOLD

    # Class names and file names come from files: printed escaped, so that `\x1b[2J` in a name is text, not a cleared screen.
    names = [printable(name) for name in predictor.classes]
    width = max(map(len, names), default=1)
    for n, prediction in enumerate(predictions):
        yield printable(prediction.source)
        if prediction.task in ("classes", "binary"):
            yield from (f"  {printable(name):<{width}}  {p:.3f}" for name, p in prediction.top)
        elif prediction.task == "multilabel":
            yield from (f"  {printable(name):<{width}}  {p:.3f}{'  on' if p > THRESHOLD else ''}" for name, p in prediction.labels)
        elif prediction.task == "regression":
            values = prediction.values.ravel()
            labels = [printable(name) for name in prediction.names] or [f"[{i}]" for i in range(len(values))]
            wide = max(map(len, labels), default=1)
            shown = 32  # a map of values would fill the screen: --json has them all
            yield from (f"  {label:<{wide}}  {v:.6g}" for label, v in zip(labels[:shown], values[:shown], strict=True))
            if len(values) > shown:
                yield f"  ... {len(values) - shown} more values (--json gives them all)"
        else:
            height, width_px = prediction.mask.shape
            total = height * width_px
            yield f"  {shape_text((height, width_px))} pixels" + (f", mask {masks[n]}" if masks else "")
            yield from (f"  {printable(name):<{width}}  {count:>8}  {count / total:6.1%}" for name, count in prediction.pixels)


def _write_masks(predictions, folder: Path, inputs: list[str | None]) -> list[Path]:
    """Each prediction's class mask as an 8-bit PNG of class indices, numbered in the order printed."""
    from PIL import Image

    from ..errors import InputFileError
    from ..outputs import refuse_replacing

    paths = [folder / f"{n:04d}.mask.png" for n in range(len(predictions))]
    refuse_replacing([("--out", path) for path in paths], [("an input", path) for path in inputs])
    if any(p.mask.max(initial=0) > 255 for p in predictions):
        raise InputFileError("a mask of more than 256 classes does not fit an 8-bit PNG", hint="use --json for the pixel counts")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for path, prediction in zip(paths, predictions, strict=True):
            Image.fromarray(prediction.mask.astype("uint8"), mode="L").save(path)
    except OSError as err:
        raise InputFileError(f"cannot write the masks into {folder}: {err.strerror or err}") from None
    return paths


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
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Threads of torch and of onnxruntime [default: the idle cores].")
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
