"""The run directory of `specc train`: its files, which folders a run may write into, and its checkpoints.

Run directory (`runs/<network>-<time>/` or --out), written by rank 0 only:
  .specc-run               written first: marks the folder as specc's own (see check_out)
  spec.cnn                 the spec text as run
  config.json              the resolved configuration, data, normalisation, device, versions
  metrics.jsonl            one JSON object per epoch
  last.safetensors         weights after the last completed epoch
  best.safetensors         weights of the epoch with the best validation metric (accuracy, AUC, F1, MAE or IoU)
  last.state.safetensors   everything else --resume needs: weights, optimiser, schedule, RNGs, history
  curves.png               loss and accuracy per epoch
  confusion.png            classifiers: the test confusion matrix (runners/mistakes.py)
  mistakes.png             classifiers: the most confidently misclassified test samples
  report.html              with --report: the run on one page (explain/page.py)
  test.json                the final test evaluation of best.safetensors
Weights files carry metadata (specc.network, .task, .classes, .mean, .std,
.input_shape, .epoch) so that `specc export` needs nothing else.

Resume. The state file holds the weights too, so one atomic write makes a
consistent checkpoint: a kill between writing two files cannot pair the
weights of one epoch with the optimiser of another. It is written first, as the
commit point of an epoch; last, best, metrics and curves follow, and --resume
writes them again from the state wherever a kill left them behind (each weights
file records its epoch). On one CPU process a resumed run is bit-identical to an
unbroken one.

Which folders. A run writes fixed names, so it writes only into a new or empty folder or one that
RUN_MARKER marks as specc's own (check_out); what an earlier start there left is cleared.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..api import Net, load
from ..errors import EXIT_BAD_SPEC, InputFileError, SpeccError, UsageError
from ..outputs import refuse_replacing
from . import checkpoint
from .config import TrainConfig, from_saved
from .interrupts import interrupts_held
from .plots import curves_title, write_curves
from .precision import precision_name

STATE_FILE = "last.state.safetensors"
RUN_MARKER = ".specc-run"  # written first into every run directory: what makes a folder one of specc's own
# Every file a run writes into its directory (besides temporary files renamed over these).
RUN_FILES = (
    *(RUN_MARKER, "spec.cnn", "config.json", "metrics.jsonl"),
    *("last.safetensors", "best.safetensors", STATE_FILE, "curves.png", "confusion.png", "mistakes.png", "report.html", "test.json"),
)


def resumed(run_dir: Path, flags: dict[str, Any], world_size: int) -> tuple[Net, TrainConfig]:
    """The spec and configuration of the run in `run_dir`, for --resume in `world_size` processes."""
    if not (run_dir / STATE_FILE).is_file() or not (run_dir / "config.json").is_file():
        raise InputFileError(
            f"{run_dir} holds no run to resume (no {STATE_FILE} and config.json)",
            hint="--resume takes a run directory written by `specc train` after at least one epoch",
        )
    saved = saved_config(run_dir)
    # The shards, the batches per epoch and so the schedule depend on the number of processes.
    trained_in = saved.get("world_size", 1)
    if trained_in != world_size:
        how = f"with --nproc {trained_in}" if trained_in > 1 else "in one process (without --nproc or torchrun)"
        raise UsageError(
            f"{run_dir} was trained in {trained_in} process{'es' if trained_in > 1 else ''}, not {world_size}: "
            "resuming with another number would change its batches and schedule",
            hint=f"resume it {how}, or start a new run with --init-from {run_dir / 'last.safetensors'}",
        )
    net = load(run_dir / "spec.cnn")
    net.check()
    return net, from_saved(saved, flags)


def saved_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.json"
    try:
        saved = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputFileError(f"{path} is not the JSON specc wrote ({err})", hint=_START_AGAIN.format(run_dir=run_dir)) from None
    if not isinstance(saved, dict) or not isinstance(saved.get("world_size", 1), int):
        raise InputFileError(f"{path} is not a configuration written by specc train", hint=_START_AGAIN.format(run_dir=run_dir))
    return saved


_START_AGAIN = "the run directory was edited or mixed with another run's files; start a new run with --init-from {run_dir}/last.safetensors"


def check_out(out: str | Path | None, inputs: dict[str, str | Path | None]) -> None:
    """Refuse an --out that holds anything but one of specc's own runs, before anything is read or written.

    A new run writes fixed names (config.json, test.json, best.safetensors...), which in a folder of the
    user's own files would replace theirs. So --out is a new or empty folder, or a run of specc's own
    (marked by RUN_MARKER, written before anything else) that has no completed epoch yet. No input of the
    run may be one of the files it writes.
    """
    if out is None:
        return
    path = Path(out)
    if (path / STATE_FILE).exists():
        raise SpeccError(
            f"{path} already holds a run", hint=f"continue it with --resume {path}, or choose another --out", exit_code=EXIT_BAD_SPEC
        )
    if path.is_dir() and not (path / RUN_MARKER).is_file() and any(path.iterdir()):
        clash = sorted(p.name for p in path.iterdir() if p.name in RUN_FILES)
        would = f"; training would overwrite {', '.join(clash)}" if clash else ""
        raise SpeccError(
            f"--out {path} is a folder of other files, not a run directory of specc's{would}; nothing was touched",
            hint="choose a new or empty folder for --out; to continue an interrupted run, use --resume on its run directory",
            exit_code=EXIT_BAD_SPEC,
        )
    refuse_replacing([("the run's file", path / name) for name in RUN_FILES], inputs)


def new_run_dir(name: str, out: str | Path | None, inputs: dict[str, str | Path | None]) -> Path:
    if out is not None:
        check_out(out, inputs)  # again: the folder may have changed while the data loaded
        path = Path(out)
        path.mkdir(parents=True, exist_ok=True)
        _mark_run_dir(path)
        return path
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1, 100):
        path = Path("runs") / (f"{name}-{stamp}" if n == 1 else f"{name}-{stamp}-{n}")
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            continue
        _mark_run_dir(path)
        return path
    raise UsageError(f"cannot make a new run directory under runs/ for {name}-{stamp}", hint="pass --out DIR")


def _mark_run_dir(path: Path) -> None:
    """The marker first, then a clean slate: what an earlier start in this folder left is specc's own, and stale."""
    (path / RUN_MARKER).write_text("a run directory of specc train; specc may write over its files\n")
    for stale in RUN_FILES:
        if stale != RUN_MARKER:
            (path / stale).unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """Written beside `path` and renamed over it, so that a kill leaves the old file or the new one, whole."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


class RunFiles:
    """The files half of train.py's _Run: what it writes into its run directory, and how --resume reads it back.

    A mixin: it works on the run's attributes (run_dir, data, learner, history, best_epoch...),
    which _Run's constructor makes, and its _weights_metadata, which _Run defines.
    """

    def _write_run_files(self, init_from: str | Path | None) -> None:
        self.run_dir.joinpath("spec.cnn").write_text(self.net.source.text)
        task = self.data.task
        resolved = self.config.model_dump() | {"lr": self.config.learning_rate, "weight_decay": self.config.decay}
        extra = {
            "network": self.net.name,
            "spec": str(self.net.source.path),
            "input_shape": list(self.net.input_shape),
            "data_source": self.data.source,
            "classes": self.data.classes,
            "samples": self.data.counts,
            "normalisation": {"mean": self.data.mean, "std": self.data.std},
            # resolved in the config's own words, so that --resume computes the same way
            "device": self.device.type,
            "precision": precision_name(self.learner.dtype),
            "world_size": self.session.world_size,
            "steps_per_epoch": self.data.steps,
            "init_from": str(init_from) if init_from else None,
            "task": {"kind": task.kind, "loss": task.loss, "metric": task.metric, "described": task.describe()},
            "specc_version": __version__,
            "torch_version": torch.__version__,
            "started": datetime.now().isoformat(timespec="seconds"),
        }
        (self.run_dir / "config.json").write_text(json.dumps(resolved | extra, indent=2) + "\n")

    def _save(self, epoch: int, improved: bool) -> None:
        weights = self.learner.module.state_dict()
        tensors = {f"model/{name}": t for name, t in weights.items()} | checkpoint.rng_state_to_tensors()
        tensors["rng/shuffle"] = self.learner.shuffle.get_state()
        meta = {"specc.epoch": str(epoch), "specc.best_epoch": str(self.best_epoch), "specc.best_score": repr(self.best_acc)}
        meta["specc.history"] = json.dumps(self.history)
        for part, state in (("optimizer", self.learner.optimizer), ("scheduler", self.learner.scheduler), ("scaler", self.learner.scaler)):
            more, more_meta = checkpoint.state_to_tensors(state.state_dict(), part)
            tensors |= more
            meta |= more_meta
        # The state is the commit point: once it is renamed the epoch is done, and everything written
        # after it (weights, metrics, curves) can be written again from it by --resume (see _repair).
        checkpoint.save_atomic(self.run_dir / STATE_FILE, tensors, meta)
        self.saved_epoch = epoch
        self._write_after_state(epoch, best=improved)

    def _write_after_state(self, epoch: int, best: bool) -> None:
        weights = self.learner.module.state_dict()
        checkpoint.save_atomic(self.run_dir / "last.safetensors", weights, self._weights_metadata(epoch))
        if best:
            checkpoint.save_atomic(self.run_dir / "best.safetensors", weights, self._weights_metadata(epoch))
        write_text(self.run_dir / "metrics.jsonl", "".join(json.dumps(row) + "\n" for row in self.history))
        write_curves(self.history, self.run_dir / "curves.png", curves_title(self.net.name, self.run_dir), self.data.task)

    def _repair(self) -> None:
        """Bring what follows the state up to it: a kill after the state's rename left the weights, metrics
        and curves of the epoch before (or half their temporary files), and test.json of none."""
        for stale in self.run_dir.glob("*.tmp-*"):
            stale.unlink(missing_ok=True)
        best = self.run_dir / "best.safetensors"
        best_behind = self.best_epoch > 0 and checkpoint.epoch_of(best) != self.best_epoch
        if best_behind and self.best_epoch != self.saved_epoch:  # only the state's own epoch can be written again
            hint = _START_AGAIN.format(run_dir=self.run_dir)
            raise InputFileError(f"{best} does not hold the weights of epoch {self.best_epoch}, the run's best", hint=hint)
        self._write_after_state(self.saved_epoch, best=best_behind)  # the module holds the state's weights

    def _restore(self) -> int:
        """The state of the last completed epoch, read from the run directory; that epoch's number."""
        saved_steps = saved_config(self.run_dir).get("steps_per_epoch", self.data.steps)
        if saved_steps != self.data.steps:
            raise UsageError(
                f"{self.run_dir} trained on {saved_steps} batches an epoch, but its data now gives {self.data.steps}: "
                "resuming would change its schedule",
                hint=f"resume with the data it was trained on, or start a new run with --init-from {self.run_dir}/last.safetensors",
            )
        try:
            return self._load_state()
        except (KeyError, ValueError, RuntimeError) as err:  # a missing entry, a bad number, tensors of another network
            raise InputFileError(
                f"{self.run_dir / STATE_FILE} does not fit this run ({str(err).splitlines()[0]})",
                hint=_START_AGAIN.format(run_dir=self.run_dir),
            ) from None

    def _load_state(self) -> int:
        tensors, meta = checkpoint.load(self.run_dir / STATE_FILE)
        self.learner.module.load_state_dict({name[len("model/") :]: t for name, t in tensors.items() if name.startswith("model/")})
        self.learner.optimizer.load_state_dict(checkpoint.state_from_tensors(tensors, meta, "optimizer"))
        self.learner.scheduler.load_state_dict(checkpoint.state_from_tensors(tensors, meta, "scheduler"))
        self.learner.scaler.load_state_dict(checkpoint.state_from_tensors(tensors, meta, "scaler"))
        checkpoint.restore_rng_state(tensors)
        self.learner.shuffle.set_state(tensors["rng/shuffle"])
        self.history = json.loads(meta["specc.history"])
        self.best_epoch, self.best_acc = int(meta["specc.best_epoch"]), float(meta["specc.best_score"])
        self.saved_epoch = int(meta["specc.epoch"])
        if self.session.is_main:
            with interrupts_held():
                self._repair()
        return self.saved_epoch
