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
precision: precision.py; augmentation: augment.py; --init-from: finetune.py.

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
from torch import nn

from ..api import Net, load
from ..errors import EXIT_FAILURE, EXIT_INTERRUPTED, InputFileError, SpeccError, UsageError
from . import checkpoint, data
from .augment import augment, augment_pair, check_augmentation
from .config import TrainConfig, resolve
from .distributed import Session, pick_device, start
from .evaluate import Normalise, check_train_batch, evaluate, summarise
from .finetune import InitReport, load_matching
from .losses import Evaluation, Task, choose, logits_model
from .optim import build_optimizer, build_scheduler, decayed
from .precision import autocast_dtype, precision_name
from .rundir import RunFiles, check_out, new_run_dir, resumed, write_text
from .watchers import draw_test, watching

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
        run = _Run(net, config, session, Path(resume) if resume is not None else None, reporter if session.is_main else None)
        run.watchers = watchers if session.is_main else []
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
        return resumed(Path(resume), flags, world_size)
    net = load(spec)
    net.check()
    return net, resolve(net.network.train, flags)


def _inputs(spec, flags: dict[str, Any], init_from) -> dict[str, str | Path | None]:
    return {"the spec": spec, "--init-from": init_from, "--data": flags.get("data")}


# --- the run -------------------------------------------------------------------


class _Run(RunFiles):
    """One training run in this process: data and model on the device, the epoch loop, checkpoints."""

    # Set by _load_data and _build_model, which run() calls first.
    task: Task
    classes: list[str]
    source: str
    mean: list[float]
    std: list[float]
    normalise: Normalise
    counts: dict[str, int]
    x: dict[str, torch.Tensor]
    y: dict[str, torch.Tensor]
    batch: int
    steps: int
    module: nn.Module
    init_report: InitReport | None
    dtype: torch.dtype | None
    channels_last: bool
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    model: nn.Module
    shuffle: torch.Generator

    def __init__(self, net: Net, config: TrainConfig, session: Session, resume: Path | None, reporter: Reporter | None):
        self.net, self.config, self.session = net, config, session
        self.reporter = reporter or Reporter()
        self.resumed = resume is not None
        self.run_dir = resume  # where the run lives; rank 0 alone writes there, and makes it for a new run
        self.device = session.device
        self.history: list[dict] = []
        self.best_epoch, self.best_acc = 0, -math.inf  # without validation the score is -loss, which may be below -1
        self.saved_epoch = 0  # the epoch of the checkpoint on disk
        self.watchers: list = []  # TensorBoard, the report page: told of each epoch and of the test

    def run(self, out: str | Path | None, init_from: str | Path | None, inputs: dict[str, str | Path | None]) -> RunResult:
        self._load_data()
        self._build_model(init_from)
        first = self._restore() + 1 if self.resumed else 1
        if not self.resumed and self.session.is_main:
            self.run_dir = new_run_dir(self.net.name, out, inputs)
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
        self.dtype = autocast_dtype(config.precision, self.device)
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
            for watcher in self.watchers:
                watcher.epoch(self, row)
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

    def _final_test(self) -> Evaluation | None:
        if "test" not in self.x or not self.best_epoch:
            self._draw_test(None)
            return None
        weights, _ = checkpoint.load(self.run_dir / "best.safetensors")
        self.module.load_state_dict(weights)
        # fp32, whatever training ran in: the figure `specc eval` gives for the same weights and data by default
        sums = evaluate(self.module, self.x["test"], self.y["test"], self.normalise, self.task, contextlib.nullcontext, self.channels_last)
        test = summarise(sums, self.task)
        self._draw_test(test)  # before test.json, which stays the run's last write
        record = {**test.record(self.best_epoch), "precision": "fp32"}
        write_text(self.run_dir / "test.json", json.dumps(record) + "\n")
        return test

    def _draw_test(self, test: Evaluation | None) -> None:
        draw_test(self, test)

    def _info(self, first_epoch: int) -> dict[str, Any]:
        params = sum(p.numel() for p in self.module.parameters())
        trainable = sum(p.numel() for p in self.module.parameters() if p.requires_grad)
        return {
            "network": self.net.name,
            "run_dir": self.run_dir,
            "params": params,
            "trainable": trainable,
            "device": str(self.device),
            "precision": precision_name(self.dtype),
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
    check_augmentation(config.augment, net.input_shape)
    return config, splits, task


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


def _dump_for_tests(module: nn.Module, session: Session) -> None:
    folder = os.environ.get(DUMP_ENV)
    if folder:
        checkpoint.save_atomic(Path(folder) / f"rank{session.rank}.safetensors", module.state_dict())
