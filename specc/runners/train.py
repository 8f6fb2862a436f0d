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

Run directory and resume: see rundir.py. Optimisers and schedules: optim.py;
precision: precision.py; augmentation: augment.py; the data and model built
before the first step: setup.py; --init-from: weights.py.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..api import Net, load
from ..errors import EXIT_FAILURE, EXIT_INTERRUPTED, SpeccError, UsageError
from . import checkpoint
from .augment import augment, augment_pair
from .config import TrainConfig, resolve
from .distributed import Session, pick_device, start
from .evaluate import evaluate, summarise
from .interrupts import interrupts_held
from .losses import Evaluation
from .metadata import task_name
from .precision import precision_name
from .rundir import RunFiles, check_out, new_run_dir, resumed, write_text
from .setup import build_learner, load_training_data, open_data
from .watchers import draw_test, watching


@dataclass
class Start:
    """Where a new run starts from: its run directory (None: runs/<network>-<time>), --init-from, and the inputs it must not overwrite."""

    out: str | Path | None
    init_from: str | Path | None
    inputs: dict[str, str | Path | None]
    watchers: list  # TensorBoard, the report page: told of each epoch and of the test (runners/watchers.py)


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
    tensorboard: str | Path | None = None,
    report: bool = False,
) -> RunResult:
    """Train `spec` (or continue the run in `resume`) and evaluate it on the test split.

    `flags` are TrainConfig fields that override the spec's train section
    (None: not given), e.g. `train("net.cnn", {"epochs": 3, "lr": 0.01})`.
    `tensorboard`: a folder for TensorBoard event files; `report`: keep report.html in the run directory.
    """
    flags = flags or {}
    watchers = watching(tensorboard, report)  # a missing package is refused before anything is read or written
    net, config = _spec_and_config(spec, flags, resume, int(os.environ.get("WORLD_SIZE", "1")))
    inputs = _inputs(spec, flags, init_from)
    if resume is None:
        check_out(out, inputs)
    session = start(config.device)
    try:
        where = Start(out, init_from, inputs, watchers if session.is_main else [])
        run = _Run(net, config, session, Path(resume) if resume is not None else None, reporter if session.is_main else None, where)
        result = run.run()
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
    open_data(net, config)


def _spec_and_config(spec: str | Path | None, flags: dict[str, Any], resume: str | Path | None, world_size: int) -> tuple[Net, TrainConfig]:
    if (spec is None) == (resume is None):
        raise UsageError("give a spec to train, or a run directory to resume, but not both", hint="e.g. specc train specs/fashion.cnn")
    if resume is not None:
        return resumed(Path(resume), flags, world_size)
    net = load(spec)
    net.check()
    return net, resolve(net.network.train, flags)


def _inputs(spec, flags: dict[str, Any], init_from) -> dict[str, str | Path | None]:
    return {"the spec": spec, "--init-from": init_from, "--data": flags.get("data")}


# --- the run -------------------------------------------------------------------


class _Run(RunFiles):
    """One training run in this process: data and model on the device, the epoch loop, checkpoints."""

    def __init__(self, net: Net, config: TrainConfig, session: Session, resume: Path | None, reporter: Reporter | None, where: Start):
        self.net, self.session, self.device = net, session, session.device
        self.reporter = reporter or Reporter()
        self.config, self.data = load_training_data(net, config, session)
        self.learner = build_learner(net, self.config, session, self.data, where.init_from)
        self.init_from, self.resumed = where.init_from, resume is not None
        # Where the run lives; rank 0 alone writes there. Made only now that data and model are built,
        # so that a mistake in either leaves no empty run directory behind.
        self.run_dir = resume if resume is not None or not session.is_main else new_run_dir(net.name, where.out, where.inputs)
        self.history: list[dict] = []
        self.best_epoch, self.best_acc = 0, -math.inf  # without validation the score is -loss, which may be below -1
        self.saved_epoch = 0  # the epoch of the checkpoint on disk
        self.watchers = where.watchers

    def run(self) -> RunResult:
        first = self._restore() + 1 if self.resumed else 1
        if not self.resumed and self.session.is_main:
            self._write_run_files(self.init_from)
        self.reporter.start(self._info(first))
        if self.learner.init_report is not None:
            self.reporter.note(str(self.learner.init_report))
        try:
            for epoch in range(first, self.config.epochs + 1):
                self._epoch(epoch)
        except KeyboardInterrupt:
            raise _interrupted(self.run_dir, self.saved_epoch) from None
        result = RunResult(self.run_dir, len(self.history), self.best_epoch, self.history, self.data.classes)
        if self.session.is_main:
            result.test = self._final_test()
        self.reporter.finish(result)
        return result

    def _precision(self):
        if self.learner.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.learner.dtype)

    # ---- one epoch ---------------------------------------------------------------------

    def _epoch(self, epoch: int) -> None:
        train_loss, train, seconds = self._train_epoch(epoch)
        self._check_weights(epoch)
        self.session.sync_buffers(self.learner.module)
        metric = self.data.task.metric
        row = {"epoch": epoch, "train_loss": train_loss, f"train_{metric}": train.metrics[metric], "val_loss": None, f"val_{metric}": None}
        score = -train_loss
        if "val" in self.data.x:
            val = self._evaluate("val")
            row.update({"val_loss": val.loss, f"val_{metric}": val.metrics[metric]})
            score = self.data.task.score(val)
        images = self.data.steps * self.data.batch * self.session.world_size
        row.update(lr=self.learner.optimizer.param_groups[0]["lr"], seconds=round(seconds, 3), images_per_s=round(images / seconds, 1))
        self.history.append(row)
        if score > self.best_acc:
            self.best_epoch, self.best_acc = epoch, score
        if self.session.is_main:
            with interrupts_held():  # the epoch's files are written whole; a Ctrl-C meanwhile stops the run after them
                self._save(epoch, improved=self.best_epoch == epoch)
                for watcher in self.watchers:
                    watcher.epoch(self, row)
        self.reporter.epoch_end(row)

    def _train_epoch(self, epoch: int) -> tuple[float, Evaluation, float]:
        session, data, batch, steps = self.session, self.data, self.data.batch, self.data.steps
        order = epoch_order(data.counts["train"], self.learner.shuffle, session.rank, session.world_size, steps * batch).to(self.device)
        x, y = data.x["train"], data.y["train"]
        losses = torch.zeros(steps, device=self.device)
        sums = torch.zeros(data.task.width, device=self.device, dtype=torch.float64)
        # Reading the loss waits for the device; a GPU is let run ahead between checks.
        check_every = 1 if self.device.type == "cpu" else 25
        self.learner.module.train()
        self.reporter.epoch_start(epoch, self.config.epochs, steps * batch * session.world_size)
        began, checked = time.perf_counter(), 0
        for step in range(steps):
            index = order[step * batch : (step + 1) * batch]
            losses[step], batch_sums = self._step(x[index], y[index])
            sums += batch_sums
            if step + 1 - checked == check_every or step + 1 == steps:
                self._check_finite(losses[checked : step + 1], epoch, checked)
                checked = step + 1
                done = checked * batch * session.world_size
                self.reporter.progress(done, losses[:checked].mean().item(), done / (time.perf_counter() - began))
        seconds = time.perf_counter() - began
        sums = session.all_reduce_sum(sums)
        loss = session.all_reduce_sum(losses.sum().double().reshape(1)).item()
        return loss / (steps * session.world_size), data.task.summarise(sums), seconds

    def _step(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        task, learner = self.data.task, self.learner
        xb, yb = augment_pair(xb, yb, self.config.augment) if task.spatial else (augment(xb, self.config.augment), yb)
        xb = self.data.normalise(xb)
        if learner.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with self._precision():
            out = learner.model(xb).float()
        loss = task.objective(out, yb, self.config.label_smoothing)
        learner.optimizer.zero_grad(set_to_none=True)
        learner.scaler.scale(loss).backward()
        learner.scaler.step(learner.optimizer)
        learner.scaler.update()
        learner.scheduler.step()
        with torch.no_grad():
            return loss.detach(), task.sums(out.detach(), yb, with_loss=False)

    def _check_finite(self, window: torch.Tensor, epoch: int, first_step: int) -> None:
        bad = (~torch.isfinite(window)).nonzero()
        # Every process stops together: one NaN spreads to all through the averaged gradients anyway.
        if self.session.all_reduce_sum(torch.tensor([float(len(bad))], device=self.device)).item() == 0:
            return
        if len(bad):
            step = first_step + int(bad[0]) + 1
            raise self._diverged(epoch, f"the loss became {window[bad[0]].item()} at step {step} of {self.data.steps}")
        raise self._diverged(epoch, "the loss became nan or inf in another process")

    def _check_weights(self, epoch: int) -> None:
        """The last step's update is seen by no loss; a NaN it wrote must not reach a checkpoint."""
        finite = torch.stack([p.isfinite().all() for p in self.learner.module.parameters()]).all()
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
        session, data = self.session, self.data
        shard = (session.rank, session.world_size)
        channels_last = self.learner.channels_last
        sums = evaluate(self.learner.module, data.x[split], data.y[split], data.normalise, data.task, self._precision, channels_last, shard)
        return summarise(session.all_reduce_sum(sums), data.task)

    def _weights_metadata(self, epoch: int) -> dict[str, str]:
        return {
            "specc.network": self.net.name,
            "specc.task": task_name(self.data.task.kind),
            "specc.classes": json.dumps(self.data.classes),
            "specc.mean": json.dumps(self.data.mean),
            "specc.std": json.dumps(self.data.std),
            "specc.input_shape": json.dumps(list(self.net.input_shape)),
            "specc.epoch": str(epoch),
        }

    def _final_test(self) -> Evaluation | None:
        if "test" not in self.data.x or not self.best_epoch:
            draw_test(self, None)
            return None
        weights, _ = checkpoint.load(self.run_dir / "best.safetensors")
        self.learner.module.load_state_dict(weights)
        # fp32, whatever training ran in: the figure `specc eval` gives for the same weights and data by default
        data, fp32 = self.data, contextlib.nullcontext
        sums = evaluate(self.learner.module, data.x["test"], data.y["test"], data.normalise, data.task, fp32, self.learner.channels_last)
        test = summarise(sums, data.task)
        with interrupts_held():
            draw_test(self, test)  # before test.json, which stays the run's last write
            record = {**test.record(self.best_epoch), "precision": "fp32"}
            write_text(self.run_dir / "test.json", json.dumps(record) + "\n")
        return test

    def _info(self, first_epoch: int) -> dict[str, Any]:
        params = sum(p.numel() for p in self.learner.module.parameters())
        trainable = sum(p.numel() for p in self.learner.module.parameters() if p.requires_grad)
        return {
            "network": self.net.name,
            "run_dir": self.run_dir,
            "params": params,
            "trainable": trainable,
            "device": str(self.device),
            "precision": precision_name(self.learner.dtype),
            "world_size": self.session.world_size,
            "data": self.data.source,
            "samples": self.data.counts,
            "config": self.config,
            "first_epoch": first_epoch,
            "batch": self.data.batch,
            "steps": self.data.steps,
            "task": self.data.task,
        }


def epoch_order(n: int, generator: torch.Generator, rank: int, world_size: int, count: int) -> torch.Tensor:
    """This process's `count` sample indices for one epoch: every world_size-th of one shared shuffle.

    Every process draws the same permutation from its identically seeded
    generator, so the shards are disjoint without any communication, as with
    DistributedSampler.
    """
    return torch.randperm(n, generator=generator)[rank::world_size][:count]


def _interrupted(run_dir: Path | None, done: int) -> SpeccError:
    saved = f"epoch {done} is saved" if done else "no epoch had completed"
    hint = f"continue with: specc train --resume {run_dir}" if done else "start it again"
    return SpeccError(f"training interrupted; {saved}", hint=hint, exit_code=EXIT_INTERRUPTED)
