"""The loss and metrics of a network on labelled data (`specc eval`), and the checks before training.

The network is evaluated on its logits: a final `softmax` or `sigmoid` that the
loss folds in is replaced by an identity (see `losses.logits_model`), so the
loss is the one a framework reports, not a softmax fed to another softmax.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import torch
from torch import nn

from ..errors import InputFileError, UsageError
from ..ir import Network
from . import data
from .losses import Evaluation, Task, choose, logits_model
from .metadata import read_metadata
from .weights import load_strict, read

__all__ = ["Evaluation", "Normalise", "check_train_batch", "evaluate", "evaluate_weights", "logits_model", "summarise"]

EVAL_BATCH = 512  # no gradients are kept, so batches can be larger than in training


def check_train_batch(network: Network, batch: int, flag: str) -> None:
    """Refuse batches of one where a batchnorm sees one value per channel of each sample.

    After flatten or a global pool such a batchnorm has no statistics to compute from a single
    sample, and torch refuses it in training mode. `flag` names the setting to change.
    """
    if batch >= 2:
        return
    for layer in network.layers():
        if layer.kind.batch_statistics and layer.in_shape is not None and math.prod(layer.in_shape[1:]) == 1:
            raise UsageError(
                f"{layer.kind.name} {layer.name} (line {layer.line}) sees one value per channel, so it cannot train on batches of {batch}",
                hint=f"use {flag} 2 or more",
            )


class Normalise:
    """(x - mean) / std per channel, as one multiply-add on a batch."""

    def __init__(self, mean: list[float], std: list[float], device: torch.device, sample_dims: int):
        shape = (1, len(mean)) + (1,) * (sample_dims - 1)
        std_t = torch.tensor(std, device=device).view(shape)
        self.scale = 1 / std_t
        self.shift = -torch.tensor(mean, device=device).view(shape) / std_t

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift, x, self.scale)


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    normalise: Normalise,
    task: Task,
    precision=contextlib.nullcontext,
    channels_last: bool = False,
    shard: tuple[int, int] = (0, 1),
) -> torch.Tensor:
    """The task's sums (`Task.sums`) over the samples `shard = (rank, world_size)` owns.

    Sums rather than means, so that the shards of several processes add up
    (see `summarise`); `precision` and `channels_last` are as in training.
    """
    model.eval()
    rank, world = shard
    sums = torch.zeros(task.width, dtype=torch.float64, device=x.device)
    for start in range(rank * EVAL_BATCH, len(x), world * EVAL_BATCH):
        xb, yb = normalise(x[start : start + EVAL_BATCH]), y[start : start + EVAL_BATCH]
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with precision():
            out = model(xb).float()
        sums += task.sums(out, yb)
    return sums


def summarise(sums: torch.Tensor, task: Task) -> Evaluation:
    return task.summarise(sums)


def evaluate_weights(
    spec: str | Path,
    weights: str | Path,
    data_dir: str | None = None,
    device: str = "auto",
    loss: str | None = None,
    precision: str = "fp32",
    pictures: str | Path | None = None,
) -> tuple[Evaluation, list[str]]:
    """The test-split evaluation of `spec` with the weights of a specc run (`specc eval`), and the class names.

    `loss` is as in training (auto, cross_entropy, bce, mse); None takes the spec's train setting, else auto.
    `precision` is one of train's choices; fp32 by default, as training's own final test (test.json) runs.
    `pictures`: a folder for confusion.png and mistakes.png (classifiers only).
    """
    from ..api import load
    from .config import resolve
    from .distributed import pick_device
    from .precision import autocast_dtype

    net = load(spec)
    net.check()
    if loss is None:
        loss = resolve(net.network.train, {}).loss
    file = read(Path(weights))  # a missing or damaged file is said before the data is read
    splits = data.load_splits(data_dir, net.input_shape, val_fraction=0)
    if splits.test is None:
        raise InputFileError(f"the data ({splits.train.source}) has no test split to evaluate on", hint=data.LAYOUTS_HINT)
    task = choose(net.network, loss, splits.test.y, splits.test.classes)
    model = logits_model(net.network, net.to_torch(), task)
    hint = "evaluate with the spec the weights were trained from (the run directory keeps it as spec.cnn)"
    meta = load_strict(model, Path(weights), net.source.path, net.name, hint, file)
    mean, std = trained_normalisation(meta, splits.train.x, str(weights), net.input_shape[0])
    chosen = pick_device(device)
    model.to(chosen)
    test = splits.test
    dtype = autocast_dtype(precision, chosen)
    autocast = contextlib.nullcontext if dtype is None else (lambda: torch.autocast(chosen.type, dtype=dtype))
    y = task.targets(test.y).to(chosen)
    normalise = Normalise(mean, std, chosen, test.x.dim() - 1)
    sums = evaluate(model, test.x.to(chosen), y, normalise, task, autocast)
    if pictures is not None and task.kind == "classes":
        from .mistakes import write_pictures

        Path(pictures).mkdir(parents=True, exist_ok=True)
        write_pictures(model, test.x.to(chosen), y, normalise, task.classes, Path(pictures))
    return summarise(sums, task), task.classes


def trained_normalisation(meta: dict[str, str], train_x: torch.Tensor, where: str, channels: int) -> tuple[list[float], list[float]]:
    """The mean and std the weights were trained with; weights from elsewhere get the training data's."""
    values = read_metadata(meta, where)
    if "mean" in values and "std" in values:
        for key in ("mean", "std"):
            if len(values[key]) != channels:
                raise InputFileError(
                    f"{where}: the metadata specc.{key} has {len(values[key])} numbers, but the spec's input has {channels} channels",
                    hint="evaluate with the spec the weights were trained from (the run directory keeps it as spec.cnn)",
                )
        return values["mean"], values["std"]
    return data.normalisation(train_x)
