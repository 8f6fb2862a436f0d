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
from ..train_settings import BY_NAME, DEVICES, LOSSES, PRECISIONS, SETTINGS, flag_value


def _choices(values) -> str:
    return ", ".join(values)


def _option(name: str, **changes):
    """The click option of a training setting, from its declaration in train_settings.py; `changes` for another verb's use of it."""
    setting = BY_NAME[name]
    return click.option(*setting.all_flags, setting.name, **(_parsing(setting) | {"help": setting.help} | changes))


def _parsing(setting) -> dict:
    """How click reads and completes a setting's flag; the value is then checked against its declaration."""
    if setting.type == "word":
        return {"shell_complete": _completes(setting.choices)}
    if setting.type == "words":
        return {"shell_complete": _completes_list(setting.choices)}
    return {"int": {"type": int}, "number": {"type": float}, "switch": {"is_flag": True, "default": None}}.get(setting.type, {})


def _settings(function):
    """Every training setting as an option, in the order of SETTINGS."""
    for setting in reversed(SETTINGS):
        function = _option(setting.name)(function)
    return function


def _completes(values):
    """Shell completion of a choice flag; the value itself is checked by the configuration, which suggests a spelling."""
    return lambda ctx, param, incomplete: [v for v in values if v.startswith(incomplete)]


def _completes_list(values):
    """Completion of a comma list such as --augment flip,crop: the last word completes."""

    def complete(ctx, param, incomplete):
        done, _, last = incomplete.rpartition(",")
        return [f"{done},{v}" if done else v for v in (*values, "none") if v.startswith(last)]

    return complete


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False), required=False)
@_settings
@click.option("-o", "--out", "--output", "out", type=click.Path(file_okay=False), help="Run directory (default runs/<network>-<time>).")
@click.option("--resume", type=click.Path(file_okay=False), help="Continue the run in this directory from its last completed epoch.")
@click.option("--init-from", type=click.Path(dir_okay=False), help="Start from these weights (matched by name and shape).")
@click.option("--nproc", type=click.IntRange(min=1), help="Train in N processes on this machine (launches torchrun).")
@click.option("-q", "--quiet", is_flag=True, help="No header, progress or epoch lines: only the test result and the run directory.")
@click.option("--tensorboard", type=click.Path(file_okay=False), help="Also write TensorBoard event files into this folder.")
@click.option("--report", is_flag=True, help="Keep report.html in the run directory: refreshed each epoch, complete at the end.")
@click.pass_context
def train(ctx, spec, resume, out, init_from, nproc, quiet, tensorboard, report, **flags):
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

        preflight(spec, flags, resume, nproc, out, init_from)
        sys.exit(launch(nproc, _args_without_nproc(ctx)))
    from ..runners.train import train as run_training

    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops a run as Ctrl-C does: with a message saying how to resume
    reporter = QuietReporter() if quiet else RichReporter() if sys.stdout.isatty() else PlainReporter()
    try:
        run_training(spec, flags, out=out, resume=resume, init_from=init_from, reporter=reporter, tensorboard=tensorboard, report=report)
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
@_option("data", help="Data with a test split; default $SPECC_DATA, then the installed Fashion-MNIST.")
@_option("device", default="auto", help=f"One of {_choices(DEVICES)}.")
@_option("loss", help=f"One of {_choices(LOSSES)}; default: the spec's train setting, else auto.")
@_option(
    "precision", default="fp32", show_default=True, help=f"One of {_choices(PRECISIONS)}; fp32 gives the figure of the run's test.json."
)
@click.option("-o", "--out", type=click.Path(file_okay=False), help="Also draw confusion.png and mistakes.png into this folder.")
def evaluate(spec, weights, data, device, loss, precision, out):
    """Test loss and metrics (accuracy and confusion matrix for classes) of SPEC with WEIGHTS."""
    from ..runners.evaluate import evaluate_weights

    for name, value in (("device", device), ("loss", loss), ("precision", precision)):
        flag_value(name, value)  # a wrong one is named before torch is imported
    result, classes = evaluate_weights(spec, weights, data, device, loss, precision, pictures=out)
    task = result.task
    console = _console()
    console.print(f"test {test_summary(result, task)}", highlight=False, markup=False)
    if result.confusion is not None and len(classes) <= 20:
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
        f"loss: {info['task'].describe()}",
        "  (train loss: averaged as the weights change, with dropout, augmentation and label",
        "  smoothing on, so it often sits above the validation loss of the epoch's final weights)",
        f"run directory: {info['run_dir']}",
    ]
    if info["first_epoch"] > config.epochs:
        lines.append(f"all {_plural(config.epochs, 'epoch')} are done; testing the best weights again")
    elif info["first_epoch"] > 1:
        lines.append(f"resuming at epoch {info['first_epoch']}")
    return lines


def _plural(n: int, noun: str, nouns: str | None = None) -> str:
    return f"{n:,} {noun if n == 1 else nouns or noun + 's'}"


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def epoch_line(row: dict, epochs: int, metric: str = "acc") -> str:
    """One epoch: loss and the task's metric (acc, auc, f1, mae, iou) on both splits, then the pace."""
    train = f"train loss {row['train_loss']:.4f} {metric} {_figure(row.get(f'train_{metric}'))}"
    val = "no validation split"
    if row["val_loss"] is not None:
        val = f"val loss {row['val_loss']:.4f} {metric} {_figure(row.get(f'val_{metric}'))}"
    return (
        f"epoch {row['epoch']:>{len(str(epochs))}}/{epochs}  {train}  {val}  "
        f"lr {row['lr']:.3g}  {row['seconds']:.1f} s  {row['images_per_s']:,.0f} img/s"
    )


def test_summary(result, task) -> str:
    """The test figures in words: `accuracy 0.9312 (9312/10000), loss 0.2011`, or AUC, F1, MAE, mean IoU first."""
    from ..runners.losses import METRIC_LABELS

    if task.kind == "classes":
        accuracy = result.metrics["acc"]
        return f"accuracy {accuracy:.4f} ({round(accuracy * result.count)}/{result.count}), loss {result.loss:.4f}"
    labels = METRIC_LABELS | {"acc": "pixel accuracy" if task.kind == "pixels" else "accuracy at 0.5"}
    figures = ", ".join(f"{labels[key]} {_figure(value)}" for key, value in result.metrics.items())
    return f"{figures}, {task.loss_label()} {result.loss:.4f}"


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
        self.metric, self.task = "acc", None

    def start(self, info: dict) -> None:
        self.epochs = info["config"].epochs
        self.task, self.metric = info["task"], info["task"].metric
        for line in _header(info):
            self.console.print(printable(line), highlight=False, markup=False)

    def note(self, text: str) -> None:
        self.console.print(printable(text), highlight=False, markup=False, soft_wrap=True)  # the terminal wraps; a copied path stays whole

    def epoch_start(self, epoch: int, epochs: int, images: int) -> None: ...

    def progress(self, images: int, loss: float, images_per_s: float) -> None: ...

    def close(self) -> None: ...

    def epoch_end(self, row: dict) -> None:
        self.console.print(epoch_line(row, self.epochs, self.metric), highlight=False)

    def finish(self, result, table: bool = True) -> None:
        if result.test is not None:
            test = result.test
            self.console.print(
                f"test {test_summary(test, self.task)} ({test.count:,} samples, weights of epoch {result.best_epoch})",
                highlight=False,
                markup=False,
            )
            if table and test.confusion is not None and len(result.classes) <= 20:
                self.console.print(confusion_table(test.confusion, result.classes))
        self.console.print(f"run directory: {printable(str(result.run_dir))}", highlight=False, markup=False)


class QuietReporter(PlainReporter):
    """--quiet: the test result and the run directory, nothing while training."""

    def start(self, info: dict) -> None:
        self.task, self.metric = info["task"], info["task"].metric

    def note(self, text: str) -> None: ...

    def epoch_end(self, row: dict) -> None: ...

    def finish(self, result, table: bool = False) -> None:
        super().finish(result, table=False)


class RichReporter(PlainReporter):
    """A progress bar per epoch: images done, running loss, images/s, time left."""

    def __init__(self):
        super().__init__()
        self.bar = None
        self.bar_task = None  # rich's id of the bar's task; self.task is the training task, which finish() reads
        self.last_draw = 0.0

    def epoch_start(self, epoch: int, epochs: int, images: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn(f"epoch {epoch}/{epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[shown]}"),
            TimeRemainingColumn(),
            console=self._bar_console(),
            transient=True,
        )
        self.bar_task = self.bar.add_task("train", total=images, shown="")
        self.bar.start()

    def _bar_console(self):
        """The bar's own console, three columns short of the terminal.

        The terminal echoes Ctrl-C as `^C` after the bar; on a bar that fills the line the echo wraps,
        and the bar is then one line further up than rich clears when it stops, so it stayed on screen.
        """
        from rich.console import Console

        return Console(file=self.console.file, width=max(self.console.width - 3, 20))

    def progress(self, images: int, loss: float, images_per_s: float) -> None:
        now = time.monotonic()
        if now - self.last_draw > 0.1:  # rich redraws ten times a second; updating more often is wasted work
            self.last_draw = now
            self.bar.update(self.bar_task, completed=images, shown=f"loss {loss:.4f}  {images_per_s:,.0f} img/s")

    def epoch_end(self, row: dict) -> None:
        self.close()
        super().epoch_end(row)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
