"""Loss, accuracy and confusion matrix of a network on labelled data; `specc eval`.

The network is evaluated on its logits: a spec that ends in `softmax` has
that layer replaced by an identity (see `logits_model`), so the loss is the
cross-entropy a framework reports, not a softmax fed to another softmax.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 (the name every PyTorch reader knows)

from ..errors import InputFileError, UsageError
from ..ir import Group, Layer, Network
from . import checkpoint, data

EVAL_BATCH = 512  # no gradients are kept, so batches can be larger than in training


@dataclass
class Evaluation:
    loss: float  # mean cross-entropy
    accuracy: float
    confusion: list[list[int]]  # confusion[true][predicted]
    count: int


def logits_model(network: Network, model: nn.Module) -> nn.Module:
    """`model` with a final softmax layer replaced by nn.Identity; it has no parameters, so weights are unchanged."""
    node = network.body[-1] if network.body else None
    while isinstance(node, Group) and node.kind in ("block", "repeat", "seq") and node.children:
        node = node.children[-1]
    if isinstance(node, Layer) and node.kind.name == "softmax":
        model.set_submodule(node.name, nn.Identity())
    return model


def check_classifier(network: Network, classes: list[str]) -> None:
    """Training and evaluation need one score per class out of the network."""
    out = tuple(network.output_shape or ())
    if len(out) != 1:
        raise UsageError(
            f"the network's output is {'x'.join(map(str, out))}, but a classifier's must be one score per class",
            hint="end the spec with `flatten` and `fc <number of classes>`",
        )
    if out[0] != len(classes):
        raise UsageError(
            f"the network outputs {out[0]} scores but the data has {len(classes)} classes ({', '.join(classes[:12])})",
            hint=f"make the last layer `fc {len(classes)}`",
        )


def check_train_batch(network: Network, batch: int, flag: str) -> None:
    """Refuse batches of one where a batchnorm sees one value per channel of each sample.

    After flatten or a global pool such a batchnorm has no statistics to compute from a single
    sample, and torch refuses it in training mode. `flag` names the setting to change.
    """
    if batch >= 2:
        return
    for layer in network.layers():
        if layer.kind.name == "batchnorm" and layer.in_shape is not None and math.prod(layer.in_shape[1:]) == 1:
            raise UsageError(
                f"batchnorm {layer.name} (line {layer.line}) sees one value per channel, so it cannot train on batches of {batch}",
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
    classes: int,
    precision=contextlib.nullcontext,
    channels_last: bool = False,
    shard: tuple[int, int] = (0, 1),
) -> torch.Tensor:
    """Sums over the samples `shard = (rank, world_size)` owns: [loss, correct, count, confusion...].

    Sums rather than means, so that the shards of several processes add up
    (see `summarise`); `precision` and `channels_last` are as in training.
    """
    model.eval()
    rank, world = shard
    sums = torch.zeros(3 + classes * classes, dtype=torch.float64, device=x.device)
    for start in range(rank * EVAL_BATCH, len(x), world * EVAL_BATCH):
        xb, yb = normalise(x[start : start + EVAL_BATCH]), y[start : start + EVAL_BATCH]
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with precision():
            logits = model(xb).float()
        predicted = logits.argmax(1)
        sums[0] += F.cross_entropy(logits, yb, reduction="sum")
        sums[1] += (predicted == yb).sum()
        sums[2] += len(yb)
        sums[3:] += torch.bincount(yb * classes + predicted, minlength=classes * classes)
    return sums


def summarise(sums: torch.Tensor, classes: int) -> Evaluation:
    loss, correct, count = sums[:3].tolist()
    confusion = sums[3:].view(classes, classes).long().tolist()
    return Evaluation(loss / max(count, 1), correct / max(count, 1), confusion, int(count))


def evaluate_weights(
    spec: str | Path, weights: str | Path, data_dir: str | None = None, device: str = "auto", precision: str = "fp32"
) -> tuple[Evaluation, list[str]]:
    """The test-split evaluation of `spec` with the weights of a specc run (`specc eval`), and the class names.

    `precision` is one of train's choices; fp32 by default, as training's own final test (test.json) runs.
    """
    from ..api import load
    from .distributed import pick_device
    from .train import _autocast_dtype

    net = load(spec)
    net.check()
    tensors, meta = checkpoint.load(Path(weights))
    splits = data.load_splits(data_dir, net.input_shape, val_fraction=0)
    if splits.test is None:
        raise InputFileError(f"the data ({splits.train.source}) has no test split to evaluate on", hint=data.LAYOUTS_HINT)
    classes = splits.test.classes
    check_classifier(net.network, classes)
    mean, std = _normalisation(meta, splits.train.x, str(weights), net.input_shape[0])
    model = logits_model(net.network, net.to_torch())
    _load_weights(model, tensors, Path(weights))
    refuse_non_finite(tensors, Path(weights))
    chosen = pick_device(device)
    model.to(chosen)
    test = splits.test
    dtype = _autocast_dtype(precision, chosen)
    autocast = contextlib.nullcontext if dtype is None else (lambda: torch.autocast(chosen.type, dtype=dtype))
    normalise = Normalise(mean, std, chosen, test.x.dim() - 1)
    sums = evaluate(model, test.x.to(chosen), test.y.to(chosen), normalise, len(classes), autocast)
    return summarise(sums, len(classes)), classes


def _normalisation(meta: dict[str, str], train_x: torch.Tensor, where: str, channels: int) -> tuple[list[float], list[float]]:
    """The mean and std the weights were trained with; weights from elsewhere get the training data's."""
    from ..backends.onnx import read_metadata

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


def refuse_non_finite(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """NaN or infinite weights are a damaged file (or a run that diverged): say so before using them."""
    bad = [name for name, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise InputFileError(
            f"{path} holds NaN or infinite weights ({', '.join(bad[:3])}{more})",
            hint="the file is damaged, or training diverged: use an earlier checkpoint, or train again with a lower learning rate",
        )


def _load_weights(model: nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(name for name in set(expected) & set(tensors) if tensors[name].shape != expected[name].shape)
    if missing or unexpected or wrong:
        problems = [
            f"{label}: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"
            for label, names in (("missing", missing), ("not in the spec", unexpected), ("of another shape", wrong))
            if names
        ]
        raise InputFileError(
            f"{path} does not hold this spec's weights ({'; '.join(problems)})",
            hint="evaluate with the spec the weights were trained from (the run directory keeps it as spec.cnn)",
        )
    model.load_state_dict(tensors)
