"""`specc train` and `specc eval`: the verbs that need data and torch.

Both import the runners inside the command, so the CLI starts fast. What a
run reports is drawn here: a rich progress bar per epoch on a terminal,
plain lines when the output is a pipe or a file.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import click

from ..errors import SpeccError, UsageError, printable
from ..runners.config import AUGMENTATIONS, DEVICES, OPTIMIZERS, PRECISIONS, SCHEDULES


def _choices(values) -> str:
    return ", ".join(values)


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False), required=False)
@click.option("--epochs", type=int, help="Passes over the training data.")
@click.option("--batch-size", type=int, help="Samples per step (per process when distributed).")
@click.option("--optimizer", help=f"One of {_choices(OPTIMIZERS)}.")
@click.option("--lr", type=float, help="Learning rate (the peak for onecycle); default: the optimiser's usual one.")
@click.option("--momentum", type=float, help="Momentum of the momentum and nesterov optimisers (0.9).")
@click.option("--weight-decay", type=float, help="Weight decay of conv and fc weights (biases and norms get none).")
@click.option("--schedule", help=f"Learning-rate schedule: {_choices(SCHEDULES)}.")
@click.option("--label-smoothing", type=float, help="Label smoothing of the training loss, e.g. 0.1.")
@click.option("--augment", help=f"Comma list of {_choices(AUGMENTATIONS)}, or none.")
@click.option("--seed", type=int, help="Seed of initialisation, shuffling, validation split and augmentation.")
@click.option("--val-fraction", type=float, help="Fraction of the training data held out for validation (0.1).")
@click.option("--data", help="Data: IDX folder, image folders or .npz; default $SPECC_DATA, then the installed Fashion-MNIST.")
@click.option("--limit", type=int, help="Use only the first N training samples (quick runs).")
@click.option("--device", help=f"One of {_choices(DEVICES)} (auto: the GPU where there is one).")
@click.option("--precision", help=f"One of {_choices(PRECISIONS)} (auto: bf16 or fp16 on GPUs, bf16 on CPUs that compute it natively).")
@click.option("--compile", "compile_", is_flag=True, default=None, help="Compile the model with torch.compile.")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory (default runs/<network>-<time>).")
@click.option("--resume", type=click.Path(file_okay=False), help="Continue the run in this directory from its last completed epoch.")
@click.option("--init-from", type=click.Path(dir_okay=False), help="Start from these weights (matched by name and shape).")
@click.option("--nproc", type=click.IntRange(min=1), help="Train in N processes on this machine (launches torchrun).")
@click.pass_context
def train(ctx, spec, resume, out, init_from, nproc, compile_, **flags):
    """Train SPEC on real data and evaluate it on the test split.

    Settings come from the spec's `train { ... }` section; flags override it.
    Everything lands in a run directory: spec, configuration, metrics,
    weights, checkpoint and curves.
    """
    if (spec is None) == (resume is None):
        raise UsageError("give a spec to train, or --resume RUN_DIR, but not both", hint="e.g. specc train specs/fashion.cnn")
    if nproc is not None and "WORLD_SIZE" not in os.environ:
        from ..runners.distributed import launch
        from ..runners.train import preflight

        preflight(spec, flags, resume, nproc)
        sys.exit(launch(nproc, _args_without_nproc(ctx)))
    from ..runners.train import train as run_training

    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops a run as Ctrl-C does: with a message saying how to resume
    reporter = RichReporter() if sys.stdout.isatty() else PlainReporter()
    try:
        run_training(spec, flags | {"compile": compile_}, out=out, resume=resume, init_from=init_from, reporter=reporter)
    except SpeccError as err:
        if os.environ.get("RANK", "0") != "0":  # every process meets the same error; rank 0 tells it
            sys.exit(err.exit_code)
        raise
    finally:
        reporter.close()


@click.command(name="eval")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option(
    "--weights", required=True, type=click.Path(dir_okay=False), help="A weights file of a run, e.g. runs/<dir>/best.safetensors."
)
@click.option("--data", help="Data with a test split; default $SPECC_DATA, then the installed Fashion-MNIST.")
@click.option("--device", default="auto", help=f"One of {_choices(DEVICES)}.")
@click.option(
    "--precision", default="fp32", show_default=True, help=f"One of {_choices(PRECISIONS)}; fp32 gives the figure of the run's test.json."
)
def evaluate(spec, weights, data, device, precision):
    """Test accuracy, loss and confusion matrix of SPEC with WEIGHTS."""
    from ..runners.evaluate import evaluate_weights

    if device not in DEVICES:
        raise UsageError(f"--device {device}: unknown device", hint=f"choose from {_choices(DEVICES)}")
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision}: unknown precision", hint=f"choose from {_choices(PRECISIONS)}")
    result, classes = evaluate_weights(spec, weights, data, device, precision)
    console = _console()
    console.print(
        f"test accuracy {result.accuracy:.4f} ({round(result.accuracy * result.count)}/{result.count}), loss {result.loss:.4f}",
        highlight=False,
    )
    console.print(confusion_table(result.confusion, classes))


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _args_without_nproc(ctx: click.Context) -> list[str]:
    """This command's arguments as given, for torchrun to pass on to each process."""
    args: list[str] = []
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.name == "nproc" or value is None or value is False:
            continue
        if isinstance(param, click.Argument):
            args.append(str(value))
        elif param.is_flag:
            args.append(param.opts[0])
        else:
            args += [param.opts[0], str(value)]
    return args


def _console():
    from .spec import _console as console

    return console()


# --- what a run shows -------------------------------------------------------------


def _header(info: dict) -> list[str]:
    config, samples = info["config"], info["samples"]
    processes = f", {info['world_size']} processes" if info["world_size"] > 1 else ""
    params = f"{info['params']:,} parameters, {info['trainable']:,} trainable"
    recipe = f"{config.optimizer} lr {config.learning_rate:g}, weight decay {config.decay:g}, {config.schedule} schedule"
    regularisation = f"label smoothing {config.label_smoothing:g}, {', '.join(config.augment) or 'no'} augmentation"
    lines = [
        f"training {info['network']} ({params}) on {info['device']}, {info['precision']}{processes}",
        f"data: {info['data']}: {samples['train']:,} train, {samples['val']:,} validation, {samples['test']:,} test",
        f"{recipe}, {regularisation}; {_plural(config.epochs, 'epoch')} of {_plural(info['steps'], 'batch', 'batches')} of {info['batch']}",
        f"run directory: {info['run_dir']}",
    ]
    if info["first_epoch"] > config.epochs:
        lines.append(f"all {_plural(config.epochs, 'epoch')} are done; testing the best weights again")
    elif info["first_epoch"] > 1:
        lines.append(f"resuming at epoch {info['first_epoch']}")
    return lines


def _plural(n: int, noun: str, nouns: str | None = None) -> str:
    return f"{n:,} {noun if n == 1 else nouns or noun + 's'}"


def epoch_line(row: dict, epochs: int) -> str:
    val = f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f}" if row["val_acc"] is not None else "no validation split"
    return (
        f"epoch {row['epoch']:>{len(str(epochs))}}/{epochs}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}  {val}  "
        f"lr {row['lr']:.3g}  {row['seconds']:.1f} s  {row['images_per_s']:,.0f} img/s"
    )


def confusion_table(confusion: list[list[int]], classes: list[str]):
    """Rows are the true classes, columns the predicted ones; the diagonal is what was right."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    # No vertical rules: ten classes then fit an 80-column terminal.
    title = "confusion matrix (rows: true class, columns: predicted)"
    # min_width: with few classes the table is narrower than its title, which would wrap
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 0, 0, 1), min_width=len(title))
    table.add_column("true class", no_wrap=True)
    digits = len(str(max(max(row) for row in confusion)))
    for i in range(len(classes)):
        table.add_column(str(i), justify="right", min_width=digits)
    table.add_column("recall", justify="right", min_width=6)
    for i, (name, row) in enumerate(zip(classes, confusion, strict=True)):
        cells = [Text(str(n), style="bold" if i == j else "dim" if not n else "") for j, n in enumerate(row)]
        recall = row[i] / sum(row) if sum(row) else 0.0
        # Text, not markup: a class named [dog] or [/x] is shown as it is, not read as a style
        table.add_row(Text(f"{i} {printable(name)}"), *cells, f"{recall:.3f}")
    return table


class PlainReporter:
    """One line per epoch, for logs and pipes."""

    def __init__(self):
        self.console = _console()
        self.epochs = 0

    def start(self, info: dict) -> None:
        self.epochs = info["config"].epochs
        for line in _header(info):
            self.console.print(printable(line), highlight=False, markup=False)

    def note(self, text: str) -> None:
        self.console.print(printable(text), highlight=False, markup=False)

    def epoch_start(self, epoch: int, epochs: int, images: int) -> None: ...

    def progress(self, images: int, loss: float, images_per_s: float) -> None: ...

    def close(self) -> None: ...

    def epoch_end(self, row: dict) -> None:
        self.console.print(epoch_line(row, self.epochs), highlight=False)

    def finish(self, result) -> None:
        if result.test is not None:
            test = result.test
            self.console.print(
                f"test accuracy {test.accuracy:.4f}, loss {test.loss:.4f} ({test.count:,} images, weights of epoch {result.best_epoch})",
                highlight=False,
            )
            if len(result.classes) <= 20:
                self.console.print(confusion_table(test.confusion, result.classes))
        self.console.print(f"run directory: {printable(str(result.run_dir))}", highlight=False, markup=False)


class RichReporter(PlainReporter):
    """A progress bar per epoch: images done, running loss, images/s, time left."""

    def __init__(self):
        super().__init__()
        self.bar = None
        self.last_draw = 0.0

    def epoch_start(self, epoch: int, epochs: int, images: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn(f"epoch {epoch}/{epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[shown]}"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.task = self.bar.add_task("train", total=images, shown="")
        self.bar.start()

    def progress(self, images: int, loss: float, images_per_s: float) -> None:
        now = time.monotonic()
        if now - self.last_draw > 0.1:  # rich redraws ten times a second; updating more often is wasted work
            self.last_draw = now
            self.bar.update(self.task, completed=images, shown=f"loss {loss:.4f}  {images_per_s:,.0f} img/s")

    def epoch_end(self, row: dict) -> None:
        self.close()
        super().epoch_end(row)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
