"""`specc train`: a spec and data in, a run directory out.

Speed. The whole data set lives as tensors on the training device. An epoch
is one shuffled permutation cut into batches, augmented in bulk on the
device; there is no DataLoader, whose per-sample indexing and collation cost
more than small networks take to compute. Images flow channels-last. On a
GPU, and on CPUs with native bf16 (AVX512-BF16, AMX), the step runs under
autocast; `--compile` adds torch.compile (on the CPUs measured here it costs
30 s to compile and then runs slower, so it is not the default).

Loss. Chosen from how the spec ends and what the data's targets are, or by
`loss=` (see losses.py): cross-entropy, binary cross-entropy, mean squared
error, per-pixel cross-entropy; the metrics follow it. A final softmax or
sigmoid is folded into the loss. The reported train loss is the training
objective, label smoothing included, averaged while the weights change and
with dropout and augmentation on; validation and test losses are the plain
loss of the epoch's final weights, which is why they often sit lower.

Run directory (`runs/<network>-<time>/` or --out), written by rank 0 only:
  .specc-run               written first: marks the folder as specc's own (see check_out)
  spec.cnn                 the spec text as run
  config.json              the resolved configuration, data, normalisation, device, versions
  metrics.jsonl            one JSON object per epoch
  last.safetensors         weights after the last completed epoch
  best.safetensors         weights of the epoch with the best validation metric (accuracy, AUC, F1, MAE or IoU)
  last.state.safetensors   everything else --resume needs: weights, optimiser, schedule, RNGs, history
  curves.png               loss and accuracy per epoch
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

Several processes (torchrun): each takes every world_size-th index of the
same permutation, a disjoint shard, like DistributedSampler; --batch-size is
per process; gradients are averaged by DistributedDataParallel.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 (the name every PyTorch reader knows)

from .. import __version__
from ..api import Net, load
from ..errors import EXIT_BAD_SPEC, EXIT_FAILURE, EXIT_INTERRUPTED, InputFileError, SpeccError, UsageError
from ..ir import Network
from ..outputs import refuse_replacing
from . import checkpoint, data
from .config import TrainConfig, from_saved, resolve
from .distributed import Session, pick_device, start
from .evaluate import Normalise, check_train_batch, evaluate, summarise
from .losses import Evaluation, Task, choose, logits_model
from .plots import curves_title, write_curves

STATE_FILE = "last.state.safetensors"
RUN_MARKER = ".specc-run"  # written first into every run directory: what makes a folder one of specc's own
# Every file a run writes into its directory (besides temporary files renamed over these).
RUN_FILES = (
    *(RUN_MARKER, "spec.cnn", "config.json", "metrics.jsonl"),
    *("last.safetensors", "best.safetensors", STATE_FILE, "curves.png", "test.json"),
)
DUMP_ENV = "SPECC_TEST_DUMP_DIR"  # tests only: every rank writes its final weights there


@dataclass
class RunResult:
    run_dir: Path | None
    epochs_done: int
    best_epoch: int
    history: list[dict]
    classes: list[str]
    test: Evaluation | None = None


class Reporter:
    """What a run tells whoever watches it. This one is silent: ranks other than 0, and the Python API."""

    def start(self, info: dict[str, Any]) -> None: ...

    def note(self, text: str) -> None: ...

    def epoch_start(self, epoch: int, epochs: int, images: int) -> None: ...

    def progress(self, images: int, loss: float, images_per_s: float) -> None: ...

    def epoch_end(self, row: dict[str, Any]) -> None: ...

    def finish(self, result: RunResult) -> None: ...


def train(
    spec: str | Path | None,
    flags: dict[str, Any] | None = None,
    *,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    init_from: str | Path | None = None,
    reporter: Reporter | None = None,
) -> RunResult:
    """Train `spec` (or continue the run in `resume`) and evaluate it on the test split.

    `flags` are TrainConfig fields that override the spec's train section
    (None: not given), e.g. `train("net.cnn", {"epochs": 3, "lr": 0.01})`.
    """
    flags = flags or {}
    net, config = _spec_and_config(spec, flags, resume, int(os.environ.get("WORLD_SIZE", "1")))
    inputs = _inputs(spec, flags, init_from)
    if resume is None:
        check_out(out, inputs)
    session = start(config.device)
    try:
        run = _Run(net, config, session, Path(resume) if resume is not None else None, reporter if session.is_main else None)
        result = run.run(out, init_from, inputs)
        session.barrier()  # rank 0 tests alone at the end; the others wait rather than tear the group down under it
        return result
    finally:
        session.close()


def preflight(spec, flags: dict[str, Any], resume: str | Path | None, world_size: int, out=None, init_from=None) -> None:
    """Meet the mistakes every process of a distributed run would meet, once, before torchrun starts them."""
    net, config = _spec_and_config(spec, flags, resume, world_size)
    if resume is None:
        check_out(out, _inputs(spec, flags, init_from))
    pick_device(config.device, local_world=world_size)
    _open_data(net, config)


def _spec_and_config(spec: str | Path | None, flags: dict[str, Any], resume: str | Path | None, world_size: int) -> tuple[Net, TrainConfig]:
    if (spec is None) == (resume is None):
        raise UsageError("give a spec to train, or a run directory to resume, but not both", hint="e.g. specc train specs/fashion.cnn")
    if resume is not None:
        return _resumed(Path(resume), flags, world_size)
    net = load(spec)
    net.check()
    return net, resolve(net.network.train, flags, net.source)


def _resumed(run_dir: Path, flags: dict[str, Any], world_size: int) -> tuple[Net, TrainConfig]:
    if not (run_dir / STATE_FILE).is_file() or not (run_dir / "config.json").is_file():
        raise InputFileError(
            f"{run_dir} holds no run to resume (no {STATE_FILE} and config.json)",
            hint="--resume takes a run directory written by `specc train` after at least one epoch",
        )
    saved = _saved_config(run_dir)
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


def _saved_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.json"
    try:
        saved = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputFileError(f"{path} is not the JSON specc wrote ({err})", hint=_START_AGAIN.format(run_dir=run_dir)) from None
    if not isinstance(saved, dict) or not isinstance(saved.get("world_size", 1), int):
        raise InputFileError(f"{path} is not a configuration written by specc train", hint=_START_AGAIN.format(run_dir=run_dir))
    return saved


_START_AGAIN = "the run directory was edited or mixed with another run's files; start a new run with --init-from {run_dir}/last.safetensors"


def _inputs(spec, flags: dict[str, Any], init_from) -> dict[str, str | Path | None]:
    return {"the spec": spec, "--init-from": init_from, "--data": flags.get("data")}


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


def _new_run_dir(name: str, out: str | Path | None, inputs: dict[str, str | Path | None]) -> Path:
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


# --- the run -------------------------------------------------------------------


class _Run:
    """One training run in this process: data and model on the device, the epoch loop, checkpoints."""

    def __init__(self, net: Net, config: TrainConfig, session: Session, resume: Path | None, reporter: Reporter | None):
        self.net, self.config, self.session = net, config, session
        self.reporter = reporter or Reporter()
        self.resumed = resume is not None
        self.run_dir = resume  # where the run lives; rank 0 alone writes there, and makes it for a new run
        self.device = session.device
        self.history: list[dict] = []
        self.best_epoch, self.best_acc = 0, -math.inf  # without validation the score is -loss, which may be below -1
        self.saved_epoch = 0  # the epoch of the checkpoint on disk

    def run(self, out: str | Path | None, init_from: str | Path | None, inputs: dict[str, str | Path | None]) -> RunResult:
        self._load_data()
        self._build_model(init_from)
        first = self._restore() + 1 if self.resumed else 1
        if not self.resumed and self.session.is_main:
            self.run_dir = _new_run_dir(self.net.name, out, inputs)
            self._write_run_files(init_from)
        self.reporter.start(self._info(first))
        if self.init_report is not None:
            self.reporter.note(str(self.init_report))
        try:
            for epoch in range(first, self.config.epochs + 1):
                self._epoch(epoch)
        except KeyboardInterrupt:
            raise _interrupted(self.run_dir, self.saved_epoch) from None
        result = RunResult(self.run_dir, len(self.history), self.best_epoch, self.history, self.classes)
        if self.session.is_main:
            result.test = self._final_test()
        _dump_for_tests(self.module, self.session)
        self.reporter.finish(result)
        return result

    # ---- setup -----------------------------------------------------------------------

    def _load_data(self) -> None:
        self.config, splits, self.task = _open_data(self.net, self.config)
        config, shape = self.config, self.net.input_shape
        self.classes, self.source = self.task.classes, splits.train.source
        self.mean, self.std = data.normalisation(splits.train.x)
        self.normalise = Normalise(self.mean, self.std, self.device, len(shape))
        self.counts = {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test) if splits.test else 0}
        on_device = {"train": splits.train, "val": splits.val, "test": splits.test}
        self.x = {k: d.x.to(self.device) for k, d in on_device.items() if d is not None and len(d)}
        self.y = {k: self.task.targets(d.y).to(self.device) for k, d in on_device.items() if d is not None and len(d)}
        per_process = len(splits.train) // self.session.world_size
        if per_process < 1:
            raise InputFileError(f"{len(splits.train)} training samples cannot be shared among {self.session.world_size} processes")
        self.batch = min(config.batch_size, per_process)
        self.steps = per_process // self.batch  # the remainder waits for the next epoch's shuffle
        check_train_batch(self.net.network, self.batch, "--batch-size")

    def _build_model(self, init_from: str | Path | None) -> None:
        config, session = self.config, self.session
        torch.manual_seed(config.seed)  # the same initial weights in every process
        self.module = logits_model(self.net.network, self.net.to_torch(), self.task)
        self.init_report = load_matching(self.module, Path(init_from)) if init_from is not None else None
        self.dtype = _autocast_dtype(config.precision, self.device)
        # Channels-last convs are faster on GPUs and with oneDNN on CPUs (+18% fp32, +40% bf16 measured here).
        self.channels_last = len(self.net.input_shape) == 3 and self.device.type in ("cpu", "cuda")
        self.module.to(self.device, memory_format=torch.channels_last if self.channels_last else torch.preserve_format)
        trainable = [p for p in self.module.parameters() if p.requires_grad]
        if not trainable:
            raise UsageError("every layer of the network is frozen: there is nothing to train", hint="remove `freeze` from a layer")
        self.optimizer = build_optimizer(trainable, config, decayed(self.net.network, self.module))
        self.scheduler = build_scheduler(self.optimizer, config, self.steps * config.epochs)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        self.model = session.wrap(self.module)
        if config.compile:
            self.model = torch.compile(self.model)
        self.shuffle = torch.Generator().manual_seed(config.seed)
        torch.manual_seed(config.seed + session.rank)  # dropout and augmentation: each process its own draws

    def _precision(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    # ---- one epoch ---------------------------------------------------------------------

    def _epoch(self, epoch: int) -> None:
        train_loss, train, seconds = self._train_epoch(epoch)
        self._check_weights(epoch)
        self.session.sync_buffers(self.module)
        metric = self.task.metric
        row = {"epoch": epoch, "train_loss": train_loss, f"train_{metric}": train.metrics[metric], "val_loss": None, f"val_{metric}": None}
        score = -train_loss
        if "val" in self.x:
            val = self._evaluate("val")
            row.update({"val_loss": val.loss, f"val_{metric}": val.metrics[metric]})
            score = self.task.score(val)
        images = self.steps * self.batch * self.session.world_size
        row.update(lr=self.optimizer.param_groups[0]["lr"], seconds=round(seconds, 3), images_per_s=round(images / seconds, 1))
        self.history.append(row)
        if score > self.best_acc:
            self.best_epoch, self.best_acc = epoch, score
        if self.session.is_main:
            self._save(epoch, improved=self.best_epoch == epoch)
        self.reporter.epoch_end(row)

    def _train_epoch(self, epoch: int) -> tuple[float, Evaluation, float]:
        session, batch = self.session, self.batch
        order = epoch_order(self.counts["train"], self.shuffle, session.rank, session.world_size, self.steps * batch).to(self.device)
        x, y = self.x["train"], self.y["train"]
        losses = torch.zeros(self.steps, device=self.device)
        sums = torch.zeros(self.task.width, device=self.device, dtype=torch.float64)
        # Reading the loss waits for the device; a GPU is let run ahead between checks.
        check_every = 1 if self.device.type == "cpu" else 25
        self.module.train()
        self.reporter.epoch_start(epoch, self.config.epochs, self.steps * batch * session.world_size)
        began, checked = time.perf_counter(), 0
        for step in range(self.steps):
            index = order[step * batch : (step + 1) * batch]
            losses[step], batch_sums = self._step(x[index], y[index])
            sums += batch_sums
            if step + 1 - checked == check_every or step + 1 == self.steps:
                self._check_finite(losses[checked : step + 1], epoch, checked)
                checked = step + 1
                done = checked * batch * session.world_size
                self.reporter.progress(done, losses[:checked].mean().item(), done / (time.perf_counter() - began))
        seconds = time.perf_counter() - began
        sums = session.all_reduce_sum(sums)
        loss = session.all_reduce_sum(losses.sum().double().reshape(1)).item()
        return loss / (self.steps * session.world_size), self.task.summarise(sums), seconds

    def _step(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xb, yb = augment_pair(xb, yb, self.config.augment) if self.task.spatial else (augment(xb, self.config.augment), yb)
        xb = self.normalise(xb)
        if self.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with self._precision():
            out = self.model(xb).float()
        loss = self.task.objective(out, yb, self.config.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        with torch.no_grad():
            return loss.detach(), self.task.sums(out.detach(), yb, with_loss=False)

    def _check_finite(self, window: torch.Tensor, epoch: int, first_step: int) -> None:
        bad = (~torch.isfinite(window)).nonzero()
        # Every process stops together: one NaN spreads to all through the averaged gradients anyway.
        if self.session.all_reduce_sum(torch.tensor([float(len(bad))], device=self.device)).item() == 0:
            return
        if len(bad):
            raise self._diverged(epoch, f"the loss became {window[bad[0]].item()} at step {first_step + int(bad[0]) + 1} of {self.steps}")
        raise self._diverged(epoch, "the loss became nan or inf in another process")

    def _check_weights(self, epoch: int) -> None:
        """The last step's update is seen by no loss; a NaN it wrote must not reach a checkpoint."""
        finite = torch.stack([p.isfinite().all() for p in self.module.parameters()]).all()
        if not finite:
            raise self._diverged(epoch, "its last step left nan or inf in the weights")

    def _diverged(self, epoch: int, what: str) -> SpeccError:
        done = self.saved_epoch
        kept = f"the last good checkpoint is in {self.run_dir} (epoch {done})" if done else "no epoch completed, so there is no checkpoint"
        return SpeccError(
            f"training diverged in epoch {epoch}: {what}; training stopped and {kept}",
            hint="lower the learning rate (--lr), add batchnorm, or check the data for NaN or huge values",
            exit_code=EXIT_FAILURE,
        )

    def _evaluate(self, split: str) -> Evaluation:
        session = self.session
        shard = (session.rank, session.world_size)
        sums = evaluate(self.module, self.x[split], self.y[split], self.normalise, self.task, self._precision, self.channels_last, shard)
        return summarise(session.all_reduce_sum(sums), self.task)

    # ---- files ---------------------------------------------------------------------------

    def _write_run_files(self, init_from: str | Path | None) -> None:
        self.run_dir.joinpath("spec.cnn").write_text(self.net.source.text)
        resolved = self.config.model_dump() | {"lr": self.config.learning_rate, "weight_decay": self.config.decay}
        extra = {
            "network": self.net.name,
            "spec": str(self.net.source.path),
            "input_shape": list(self.net.input_shape),
            "data_source": self.source,
            "classes": self.classes,
            "samples": self.counts,
            "normalisation": {"mean": self.mean, "std": self.std},
            # resolved in the config's own words, so that --resume computes the same way
            "device": self.device.type,
            "precision": _precision_name(self.dtype),
            "world_size": self.session.world_size,
            "steps_per_epoch": self.steps,
            "init_from": str(init_from) if init_from else None,
            "task": {"kind": self.task.kind, "loss": self.task.loss, "metric": self.task.metric, "described": self.task.describe()},
            "specc_version": __version__,
            "torch_version": torch.__version__,
            "started": datetime.now().isoformat(timespec="seconds"),
        }
        (self.run_dir / "config.json").write_text(json.dumps(resolved | extra, indent=2) + "\n")

    def _weights_metadata(self, epoch: int) -> dict[str, str]:
        from ..backends.onnx import task_name  # what export writes as specc.task, so that predict reads the output as trained

        return {
            "specc.network": self.net.name,
            "specc.task": task_name(self.task.kind),
            "specc.classes": json.dumps(self.classes),
            "specc.mean": json.dumps(self.mean),
            "specc.std": json.dumps(self.std),
            "specc.input_shape": json.dumps(list(self.net.input_shape)),
            "specc.epoch": str(epoch),
        }

    def _save(self, epoch: int, improved: bool) -> None:
        weights = self.module.state_dict()
        tensors = {f"model/{name}": t for name, t in weights.items()} | checkpoint.rng_state_to_tensors()
        tensors["rng/shuffle"] = self.shuffle.get_state()
        meta = {"specc.epoch": str(epoch), "specc.best_epoch": str(self.best_epoch), "specc.best_score": repr(self.best_acc)}
        meta["specc.history"] = json.dumps(self.history)
        for part, state in (("optimizer", self.optimizer), ("scheduler", self.scheduler), ("scaler", self.scaler)):
            more, more_meta = checkpoint.state_to_tensors(state.state_dict(), part)
            tensors |= more
            meta |= more_meta
        # The state is the commit point: once it is renamed the epoch is done, and everything written
        # after it (weights, metrics, curves) can be written again from it by --resume (see _repair).
        checkpoint.save_atomic(self.run_dir / STATE_FILE, tensors, meta)
        self.saved_epoch = epoch
        self._write_after_state(epoch, best=improved)

    def _write_after_state(self, epoch: int, best: bool) -> None:
        weights = self.module.state_dict()
        checkpoint.save_atomic(self.run_dir / "last.safetensors", weights, self._weights_metadata(epoch))
        if best:
            checkpoint.save_atomic(self.run_dir / "best.safetensors", weights, self._weights_metadata(epoch))
        _write_text(self.run_dir / "metrics.jsonl", "".join(json.dumps(row) + "\n" for row in self.history))
        write_curves(self.history, self.run_dir / "curves.png", curves_title(self.net.name, self.run_dir), self.task)

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
        saved_steps = _saved_config(self.run_dir).get("steps_per_epoch", self.steps)
        if saved_steps != self.steps:
            raise UsageError(
                f"{self.run_dir} trained on {saved_steps} batches an epoch, but its data now gives {self.steps}: "
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
        self.module.load_state_dict({name[len("model/") :]: t for name, t in tensors.items() if name.startswith("model/")})
        self.optimizer.load_state_dict(checkpoint.state_from_tensors(tensors, meta, "optimizer"))
        self.scheduler.load_state_dict(checkpoint.state_from_tensors(tensors, meta, "scheduler"))
        self.scaler.load_state_dict(checkpoint.state_from_tensors(tensors, meta, "scaler"))
        checkpoint.restore_rng_state(tensors)
        self.shuffle.set_state(tensors["rng/shuffle"])
        self.history = json.loads(meta["specc.history"])
        self.best_epoch, self.best_acc = int(meta["specc.best_epoch"]), float(meta["specc.best_score"])
        self.saved_epoch = int(meta["specc.epoch"])
        if self.session.is_main:
            self._repair()
        return self.saved_epoch

    def _final_test(self) -> Evaluation | None:
        if "test" not in self.x or not self.best_epoch:
            return None
        weights, _ = checkpoint.load(self.run_dir / "best.safetensors")
        self.module.load_state_dict(weights)
        # fp32, whatever training ran in: the figure `specc eval` gives for the same weights and data by default
        sums = evaluate(self.module, self.x["test"], self.y["test"], self.normalise, self.task, contextlib.nullcontext, self.channels_last)
        test = summarise(sums, self.task)
        record = {**test.record(self.best_epoch), "precision": "fp32"}
        _write_text(self.run_dir / "test.json", json.dumps(record) + "\n")
        return test

    def _info(self, first_epoch: int) -> dict[str, Any]:
        params = sum(p.numel() for p in self.module.parameters())
        trainable = sum(p.numel() for p in self.module.parameters() if p.requires_grad)
        return {
            "network": self.net.name,
            "run_dir": self.run_dir,
            "params": params,
            "trainable": trainable,
            "device": str(self.device),
            "precision": _precision_name(self.dtype),
            "world_size": self.session.world_size,
            "data": self.source,
            "samples": self.counts,
            "config": self.config,
            "first_epoch": first_epoch,
            "batch": self.batch,
            "steps": self.steps,
            "task": self.task,
        }


def _open_data(net: Net, config: TrainConfig) -> tuple[TrainConfig, data.Splits, Task]:
    """The data, split and checked against the network; the config naming the data by its full path."""
    folder = data.find_data_dir(config.data)
    # config.json names the data by its full path, so that --resume finds it from anywhere
    config = config.model_copy(update={"data": str(folder.resolve())})
    splits = data.load_splits(str(folder), net.input_shape, config.val_fraction, config.seed, config.limit)
    task = choose(net.network, config.loss, splits.train.y, splits.train.classes, config.label_smoothing)
    _check_augmentation(config.augment, net.input_shape)
    return config, splits, task


def epoch_order(n: int, generator: torch.Generator, rank: int, world_size: int, count: int) -> torch.Tensor:
    """This process's `count` sample indices for one epoch: every world_size-th of one shared shuffle.

    Every process draws the same permutation from its identically seeded
    generator, so the shards are disjoint without any communication, as with
    DistributedSampler.
    """
    return torch.randperm(n, generator=generator)[rank::world_size][:count]


def _write_text(path: Path, text: str) -> None:
    """Written beside `path` and renamed over it, so that a kill leaves the old file or the new one, whole."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _interrupted(run_dir: Path | None, done: int) -> SpeccError:
    saved = f"epoch {done} is saved" if done else "no epoch had completed"
    hint = f"continue with: specc train --resume {run_dir}" if done else "start it again"
    return SpeccError(f"training interrupted; {saved}", hint=hint, exit_code=EXIT_INTERRUPTED)


def _dump_for_tests(module: nn.Module, session: Session) -> None:
    folder = os.environ.get(DUMP_ENV)
    if folder:
        checkpoint.save_atomic(Path(folder) / f"rank{session.rank}.safetensors", module.state_dict())


# --- optimisers, schedules, precision ------------------------------------------------


def decayed(network: Network, module: nn.Module) -> set[int]:
    """ids of the parameters that get weight decay: those each layer's kind names (conv and fc weights)."""
    return {id(getattr(module.get_submodule(layer.name), name)) for layer in network.layers() for name in layer.kind.decays}


def build_optimizer(params: list[nn.Parameter], config: TrainConfig, decay: set[int]) -> torch.optim.Optimizer:
    """The optimiser of `config` over `params`; only the parameters in `decay` (by id) get weight decay, as in timm."""
    decayed = [p for p in params if id(p) in decay]
    others = [p for p in params if id(p) not in decay]
    groups = [g for g in ({"params": decayed, "weight_decay": config.decay}, {"params": others, "weight_decay": 0.0}) if g["params"]]
    lr, momentum = config.learning_rate, config.momentum
    match config.optimizer:
        case "sgd":
            return torch.optim.SGD(groups, lr)
        case "momentum":
            return torch.optim.SGD(groups, lr, momentum=momentum)
        case "nesterov":
            return torch.optim.SGD(groups, lr, momentum=momentum, nesterov=True)
        case "adagrad":
            return torch.optim.Adagrad(groups, lr)
        case "rmsprop":
            return torch.optim.RMSprop(groups, lr)
        case "adam":  # weight decay as an L2 term in the gradient, as the lectures teach
            return torch.optim.Adam(groups, lr)
        case "adamw":  # weight decay decoupled from the gradient (Loshchilov and Hutter)
            return torch.optim.AdamW(groups, lr)
    raise AssertionError(config.optimizer)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int):
    """The learning-rate schedule, stepped once per batch."""
    if config.schedule == "onecycle":
        # Cycling momentum (or Adam's beta1) is part of the method, where the optimiser has one to cycle.
        cycle = config.optimizer in ("momentum", "nesterov", "adam", "adamw")
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, config.learning_rate, total_steps=max(total_steps, 2), cycle_momentum=cycle)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(config.schedule, step, total_steps))


def lr_factor(schedule: str, step: int, total: int) -> float:
    """The learning rate at `step` of `total`, as a fraction of the configured one."""
    if schedule == "step":  # divided by 10 at half and three quarters of training
        return 0.1 ** ((step >= total // 2) + (step >= total * 3 // 4))
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))
    return 1.0


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast type, or None for plain fp32. `auto` picks bf16 only where the hardware computes it natively."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and _cpu_has_native_bf16():
        return torch.bfloat16
    return None


def _precision_name(dtype: torch.dtype | None) -> str:
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")


def _cpu_has_native_bf16() -> bool:
    # oneDNN emulates bf16 on any AVX-512 CPU, which is slower than fp32; only these flags make it pay.
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return ("avx512_bf16" in flags or "amx_bf16" in flags) and torch.ops.mkldnn._is_mkldnn_bf16_supported()


# --- augmentation, in bulk on the device --------------------------------------------


def _check_augmentation(kinds: list[str], input_shape: tuple[int, ...]) -> None:
    shape = "x".join(map(str, input_shape))
    if len(input_shape) == 1 and kinds:
        raise UsageError(f"augmentation flips and shifts 1-D and 2-D inputs, not a plain vector of {shape}", hint="use --augment none")
    if len(input_shape) == 4 and set(kinds) & {"crop", "translate"}:
        raise UsageError(f"crop and translate work on 1-D and 2-D inputs, not {shape}", hint="use --augment flip, or none")


def augment(x: torch.Tensor, kinds: list[str]) -> torch.Tensor:
    """Random horizontal flips and shifts of a batch of raw images (N x C x [H x] W), each sample its own.

    `crop` is torchvision's RandomCrop with zero padding of 1/8 of the size
    (4 pixels for 28 or 32), which is a random shift with zeros shifted in;
    `translate` shifts by up to 1/10 of the size (RandomAffine's translate=0.1).
    """
    if not kinds:
        return x
    if "flip" in kinds:
        flip = torch.rand(len(x), device=x.device) < 0.5
        x = torch.where(flip.view(-1, *[1] * (x.dim() - 1)), x.flip(-1), x)
    for kind, fraction in (("crop", 1 / 8), ("translate", 1 / 10)):
        if kind in kinds:
            x = shift(x, *[max(1, round(size * fraction)) if size > 1 else 0 for size in x.shape[2:]])
    return x


def augment_pair(x: torch.Tensor, maps: torch.Tensor, kinds: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """`augment` of images and their target maps by the same flips and shifts, as extra channels.

    `maps` are class masks (N x H x W; pixels shifted in are class 0) or values (N x C x H x W; shifted in as 0).
    """
    if not kinds:
        return x, maps
    masks = maps.dim() == x.dim() - 1
    moved = augment(torch.cat([x, maps.unsqueeze(1).to(x.dtype) if masks else maps.to(x.dtype)], 1), kinds)
    if masks:
        return moved[:, :-1], moved[:, -1].round().long()
    return moved[:, : x.shape[1]], moved[:, x.shape[1] :]


def shift(x: torch.Tensor, *max_shift: int) -> torch.Tensor:
    """Each sample moved by its own random offset of up to ±max_shift pixels per axis, zeros filling in."""
    flat = x.dim() == 3
    if flat:  # 1-D signals shift along their one axis
        x, max_shift = x.unsqueeze(2), (0, *max_shift)
    n, c, h, w = x.shape
    dy, dx = max_shift
    padded = F.pad(x, (dx, dx, dy, dy))
    rows = torch.randint(0, 2 * dy + 1, (n, 1), device=x.device) + torch.arange(h, device=x.device)
    cols = torch.randint(0, 2 * dx + 1, (n, 1), device=x.device) + torch.arange(w, device=x.device)
    out = padded.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, w + 2 * dx))
    out = out.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))
    return out.squeeze(2) if flat else out


# --- fine-tuning -------------------------------------------------------------------


@dataclass
class InitReport:
    path: Path
    loaded: list[str] = field(default_factory=list)
    wrong_shape: list[str] = field(default_factory=list)  # "name (shape in the file, shape here)"
    not_in_file: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        total = len(self.loaded) + len(self.wrong_shape) + len(self.not_in_file)
        lines = [f"initialised {len(self.loaded)} of {total} tensors from {self.path}"]
        for label, names in (
            ("skipped, shape differs", self.wrong_shape),
            ("not in the file, left as initialised", self.not_in_file),
            ("in the file but not in this network", self.unused),
        ):
            if names:
                lines.append(f"  {label}: {', '.join(names)}")
        return "\n".join(lines)


def load_matching(module: nn.Module, path: Path) -> InitReport:
    """Copy the tensors of `path` whose name and shape match into `module`; say what was skipped."""
    tensors, _ = checkpoint.load(path)
    own = module.state_dict()
    report = InitReport(path)
    for name, tensor in own.items():
        if name not in tensors:
            report.not_in_file.append(name)
        elif tensors[name].shape != tensor.shape:
            shapes = "x".join(map(str, tensors[name].shape)) or "scalar", "x".join(map(str, tensor.shape)) or "scalar"
            report.wrong_shape.append(f"{name} ({shapes[0]} in the file, {shapes[1]} here)")
        else:
            report.loaded.append(name)
    report.unused = [name for name in tensors if name not in own]
    if not report.loaded:
        raise InputFileError(
            f"no tensor in {path} matches this network by name and shape",
            hint="--init-from takes weights of a network with the same layer names",
        )
    module.load_state_dict({name: tensors[name] for name in report.loaded}, strict=False)
    return report
