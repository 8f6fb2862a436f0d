"""The training loss and the metrics that follow it, chosen from how the spec ends and what the data holds.

| the spec ends in                         | the targets                 | loss                   | metric    |
|------------------------------------------|-----------------------------|------------------------|-----------|
| softmax, or K scores                     | class labels, N             | cross-entropy          | accuracy  |
| sigmoid, or 1 score                      | two classes, or 0..1, N     | binary cross-entropy   | AUC       |
| K sigmoids                               | 0/1 per label, N×K          | multi-label BCE        | F1        |
| K values, no final activation            | floats, N×K                 | mean squared error     | MAE       |
| a map C×H×W (softmax or none)            | class masks, N×H×W          | per-pixel cross-entropy| mean IoU  |
| a map 1×H×W (sigmoid or none)            | 0/1 masks, N×H×W            | per-pixel BCE          | mean IoU  |

A final softmax or sigmoid is folded into the loss (`logits_model`): the network is trained and
evaluated on the scores before it, which is what F.cross_entropy and binary_cross_entropy_with_logits
take, and is stable where a sigmoid saturates. Neither layer has parameters, so the saved weights
are the spec's own.

Every metric is computed from sums over samples (`Task.sums`), so that shards of several processes
and batches add up exactly; AUC counts scores in fine bins of the logit (as Keras's AUC does with its
thresholds), ties within a bin counting half.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 (the name every PyTorch reader knows)

from ..errors import EXIT_BAD_SPEC, SpeccError
from ..ir import Network
from ..shapes import shape_text

AUC_BINS = 4096  # over logits -16..16: 1/128 of a logit apart
AUC_RANGE = 16.0
# The row keys of metrics.jsonl (train_acc, val_auc...), and their names in test.json and on screen.
METRIC_NAMES = {"acc": "accuracy", "auc": "auc", "f1": "f1", "mae": "mae", "iou": "mean_iou"}
METRIC_LABELS = {"acc": "accuracy", "auc": "AUC", "f1": "F1", "mae": "MAE", "iou": "mean IoU"}


@dataclass
class Evaluation:
    loss: float  # the mean loss of the task, without label smoothing
    metrics: dict[str, float | None]  # short key (acc, auc, f1, mae, iou) -> value; None where undefined (AUC of one class)
    count: int  # samples
    confusion: list[list[int]] | None = None  # confusion[true][predicted], for classes, two classes and pixels
    task: Task | None = None  # what was measured

    @property
    def accuracy(self) -> float | None:
        return self.metrics.get("acc")

    def record(self, epoch: int) -> dict[str, Any]:
        """test.json: the loss, each metric by its full name (accuracy, auc, f1, mae, mean_iou), the classes and confusion."""
        task = self.task
        record: dict[str, Any] = {"epoch": epoch, "loss_function": task.loss, "task": task.kind, "loss": self.loss}
        record |= {METRIC_NAMES[key]: value for key, value in self.metrics.items()}
        return record | {"count": self.count, "classes": task.classes, "confusion": self.confusion}


@dataclass(frozen=True)
class Task:
    """What the network is trained to do: the loss, its targets and its metrics."""

    kind: str  # classes, binary, multilabel, regression, pixels
    loss: str  # cross_entropy, bce, mse: the setting's words
    outputs: int  # classes, labels or values per sample (channels of a map)
    classes: list[str] = field(default_factory=list)
    strip: str | None = None  # the final layer kind folded into the loss
    maps: bool = False  # the targets are maps of positions (masks, or values per pixel)

    @property
    def metric(self) -> str:
        return {"classes": "acc", "binary": "auc", "multilabel": "f1", "regression": "mae", "pixels": "iou"}[self.kind]

    @property
    def one_channel_map(self) -> bool:
        """A map of one logit per pixel, for two classes (background 0, foreground 1), trained with BCE."""
        return self.kind == "pixels" and self.loss == "bce"

    @property
    def higher_is_better(self) -> bool:
        return self.metric != "mae"

    @property
    def spatial(self) -> bool:
        """The targets are maps of the input's positions: augmentation moves them with the input."""
        return self.maps

    def describe(self) -> str:
        folded = f" (the final {self.strip} folded into it)" if self.strip else ""
        what = {
            "classes": f"cross-entropy over {self.outputs} classes",
            "binary": "binary cross-entropy",
            "multilabel": f"binary cross-entropy over {self.outputs} labels",
            "regression": f"mean squared error over {self.outputs} value{'s' if self.outputs > 1 else ''}",
            "pixels": f"per-pixel cross-entropy over {self.outputs} classes"
            if self.loss == "cross_entropy"
            else "per-pixel binary cross-entropy (foreground or not)",
        }[self.kind]
        return f"{what}{folded}; metric {METRIC_LABELS[self.metric]}"

    def loss_label(self) -> str:
        if self.kind == "pixels" and self.loss == "bce":
            return "per-pixel binary cross-entropy"
        return {"classes": "cross-entropy", "binary": "binary cross-entropy", "multilabel": "binary cross-entropy"}.get(
            self.kind, "mean squared error" if self.kind == "regression" else "per-pixel cross-entropy"
        )

    # ---- targets, loss -------------------------------------------------------------------

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        """The data's targets as the loss takes them."""
        if self.kind in ("classes", "pixels"):
            return y.long()
        if self.kind == "binary":
            return y.float().reshape(len(y))
        return y.float().reshape(len(y), -1) if self.kind == "multilabel" else y.float()

    def objective(self, out: torch.Tensor, y: torch.Tensor, smoothing: float) -> torch.Tensor:
        """The training loss: mean over the batch, label smoothing included."""
        if self.one_channel_map:
            return F.binary_cross_entropy_with_logits(out[:, 0], y.float() * (1 - smoothing) + 0.5 * smoothing)
        if self.kind in ("classes", "pixels"):
            return F.cross_entropy(out, y, label_smoothing=smoothing)
        if self.kind in ("binary", "multilabel"):
            return F.binary_cross_entropy_with_logits(out.reshape(y.shape), y * (1 - smoothing) + 0.5 * smoothing)
        return F.mse_loss(out.reshape(y.shape), y)

    # ---- metrics as sums -----------------------------------------------------------------

    @property
    def width(self) -> int:
        """The length of the vector `sums` returns: [loss sum, samples, the metric's own counts...]."""
        k = self.outputs
        return 2 + {"classes": k * k, "binary": 2 * AUC_BINS + 4, "multilabel": 3, "regression": 1, "pixels": k * k}[self.kind]

    def sums(self, out: torch.Tensor, y: torch.Tensor, with_loss: bool = True) -> torch.Tensor:
        """Additive statistics of a batch: batches and processes add them up; `summarise` reads them.

        Training has its loss already (the objective, label smoothing included) and passes with_loss=False.
        """
        loss = self._loss_sum(out, y).double() if with_loss else out.new_zeros((), dtype=torch.float64)
        head = torch.stack([loss, torch.full((), len(y), dtype=torch.float64, device=out.device)])
        return torch.cat([head, self._counts(out, y).double()])

    def _loss_sum(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The sum over samples of each sample's mean loss (over its labels, values or pixels)."""
        if self.one_channel_map:
            each = F.binary_cross_entropy_with_logits(out[:, 0], y.float(), reduction="none")
        elif self.kind in ("classes", "pixels"):
            each = F.cross_entropy(out, y, reduction="none")
        elif self.kind in ("binary", "multilabel"):
            each = F.binary_cross_entropy_with_logits(out.reshape(y.shape), y, reduction="none")
        else:
            each = F.mse_loss(out.reshape(y.shape), y, reduction="none")
        return each.reshape(len(y), -1).mean(1).sum()

    def _counts(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        k = self.outputs
        if self.kind in ("classes", "pixels"):
            said = (out[:, 0] > 0).long() if self.one_channel_map else out.argmax(1)
            return torch.bincount((y * k + said).flatten(), minlength=k * k)
        if self.kind == "binary":
            logit, positive = out.reshape(-1), y >= 0.5
            bins = ((logit.clamp(-AUC_RANGE, AUC_RANGE) + AUC_RANGE) / (2 * AUC_RANGE) * AUC_BINS).long().clamp(0, AUC_BINS - 1)
            said = logit > 0
            cells = [(~positive & ~said), (~positive & said), (positive & ~said), (positive & said)]  # confusion[true][said]
            by_bin = [torch.bincount(bins[positive], minlength=AUC_BINS), torch.bincount(bins[~positive], minlength=AUC_BINS)]
            return torch.cat([*by_bin, torch.stack([c.sum() for c in cells])])
        if self.kind == "multilabel":
            said, truth = out.reshape(y.shape) > 0, y >= 0.5
            return torch.stack([(said & truth).sum(), (said & ~truth).sum(), (~said & truth).sum()])
        return (out.reshape(y.shape) - y).abs().reshape(len(y), -1).mean(1).sum().reshape(1)

    def summarise(self, sums: torch.Tensor) -> Evaluation:
        evaluation = self._summarise(sums)
        evaluation.task = self
        return evaluation

    def _summarise(self, sums: torch.Tensor) -> Evaluation:
        loss, count = sums[0].item(), int(sums[1].item())
        counts, k = sums[2:], self.outputs
        mean = loss / max(count, 1)
        if self.kind in ("classes", "pixels"):
            confusion = counts.view(k, k)
            hits, total = confusion.diagonal().sum().item(), confusion.sum().item()
            metrics: dict[str, float | None] = {"acc": hits / max(total, 1)}
            if self.kind == "pixels":
                metrics = {"iou": mean_iou(confusion), "acc": metrics["acc"]}
            return Evaluation(mean, metrics, count, confusion.long().tolist())
        if self.kind == "binary":
            positive, negative, confusion = counts[:AUC_BINS], counts[AUC_BINS : 2 * AUC_BINS], counts[2 * AUC_BINS :]
            right = (confusion[0] + confusion[3]).item()
            metrics = {"auc": binned_auc(positive, negative), "acc": right / max(count, 1)}
            return Evaluation(mean, metrics, count, confusion.view(2, 2).long().tolist())
        if self.kind == "multilabel":
            tp, fp, fn = counts.tolist()
            return Evaluation(mean, {"f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None}, count)
        return Evaluation(mean, {"mae": counts[0].item() / max(count, 1)}, count)

    def score(self, evaluation: Evaluation) -> float:
        """Higher is better: what picks the best epoch."""
        value = evaluation.metrics[self.metric]
        if value is None:
            return -evaluation.loss
        return value if self.higher_is_better else -value


def binned_auc(positive: torch.Tensor, negative: torch.Tensor) -> float | None:
    """P(a positive scores above a negative), ties counting half, from counts of scores per ascending bin."""
    p, n = positive.sum().item(), negative.sum().item()
    if not p or not n:
        return None
    below = torch.cumsum(negative, 0) - negative
    return ((positive * (below + 0.5 * negative)).sum() / (p * n)).item()


def mean_iou(confusion: torch.Tensor) -> float | None:
    """The mean over classes present (in the truth or the prediction) of |predicted ∩ true| / |predicted ∪ true|."""
    hits = confusion.diagonal()
    union = confusion.sum(0) + confusion.sum(1) - hits
    present = union > 0
    return (hits[present] / union[present]).mean().item() if present.any() else None


# --- choosing the task --------------------------------------------------------------------


def logits_model(network: Network, model: nn.Module, task: Task | None = None) -> nn.Module:
    """`model` with the final activation its loss folds in replaced by nn.Identity (by default a softmax)."""
    strip = task.strip if task is not None else "softmax"
    last = network.final_layer
    if strip and last is not None and last.kind.name == strip:
        model.set_submodule(last.name, nn.Identity())
    return model


def choose(network: Network, loss: str, y: torch.Tensor, classes: list[str], label_smoothing: float = 0.0) -> Task:
    """The task for `network` on targets `y`: `loss` is the setting (auto, cross_entropy, bce, mse)."""
    out = tuple(network.output_shape or ())
    ends = network.final_activation
    if loss == "auto":
        loss = _automatic(out, ends, y, classes)
    fits = {"cross_entropy": _cross_entropy, "bce": _bce, "mse": _mse}[loss]
    task = fits(out, ends, y, classes)
    if task.kind == "regression" and label_smoothing:
        raise _refuse(
            f"label smoothing ({label_smoothing:g}) softens class targets, but this network regresses values (mean squared error)",
            "drop label_smoothing from the train section, or pass --label-smoothing 0",
        )
    return task


def _automatic(out: tuple[int, ...], ends: str | None, y: torch.Tensor, classes: list[str]) -> str:
    if ends == "sigmoid":
        return "bce"
    if len(out) > 1 and out[0] == 1 and not y.is_floating_point():
        return "bce"  # one logit per pixel: foreground or not
    if ends == "softmax" or len(out) > 1:
        return "cross_entropy"
    if y.is_floating_point():
        return "mse"
    if y.dim() > 1 or (out == (1,) and len(classes) <= 2):
        return "bce"  # 0/1 per label, or one score for two classes
    return "cross_entropy"


def _refuse(message: str, hint: str) -> SpeccError:
    """A loss that does not fit the network's output or the data's targets: a bad input (exit 2), said with the fix."""
    return SpeccError(message, hint=hint, exit_code=EXIT_BAD_SPEC)


def _cross_entropy(out, ends, y, classes) -> Task:
    if ends == "sigmoid":
        raise _refuse(
            "cross-entropy takes the scores of a softmax, but the spec ends in sigmoid",
            "use loss=bce (--loss bce) for independent yes/no outputs, or end the spec in softmax",
        )
    if y.is_floating_point():
        raise _refuse(
            f"cross-entropy needs integer class labels, but the data's targets are floats ({shape_text(y.shape[1:]) or 'one per sample'})",
            "use loss=mse for values, or save y as integer class indices",
        )
    if len(out) > 1:
        return _pixels(out, y, classes)
    if y.dim() != 1:
        raise _refuse(
            f"the network outputs {out[0]} scores per sample, but the data has {shape_text(y.shape[1:])} labels per sample",
            "cross-entropy over classes takes one integer label per sample (y of shape N)",
        )
    if out[0] == 1:
        raise _refuse(
            f"one output cannot be a cross-entropy over the data's {len(classes)} classes",
            f"use loss=bce for one yes/no output, or make the last layer `fc {len(classes)}`",
        )
    if out[0] != len(classes):
        raise _refuse(
            f"the network outputs {out[0]} scores but the data has {len(classes)} classes ({', '.join(classes[:12])})",
            f"make the last layer `fc {len(classes)}`",
        )
    return Task("classes", "cross_entropy", out[0], classes, "softmax" if ends == "softmax" else None)


def _pixels(out, y, classes) -> Task:
    if tuple(y.shape[1:]) != out[1:]:
        raise _refuse(
            f"the network outputs {shape_text(out)} (class scores per position), but the data's masks are {shape_text(y.shape[1:])}",
            f"per-pixel cross-entropy needs one integer mask of {shape_text(out[1:])} per sample (y of shape N×{shape_text(out[1:])})",
        )
    largest = int(y.max()) if y.numel() else 0
    if largest >= out[0] or (y.numel() and int(y.min()) < 0):
        raise _refuse(
            f"the masks hold classes up to {largest}, but the network scores {out[0]} classes per position",
            f"make the last conv K={largest + 1}, or number the mask classes 0..{out[0] - 1}",
        )
    names = classes if len(classes) == out[0] else [str(c) for c in range(out[0])]
    return Task("pixels", "cross_entropy", out[0], names, "softmax", maps=True)


def _bce(out, ends, y, classes) -> Task:
    if ends == "softmax":
        raise _refuse(
            "binary cross-entropy scores each output on its own, but the spec ends in softmax",
            "end the spec in sigmoid (or in no activation) for bce, or use loss=cross_entropy",
        )
    strip = "sigmoid" if ends == "sigmoid" else None
    if len(out) > 1:
        return _binary_map(out, y, classes, strip)
    if out[0] == 1:
        if y.numel() != len(y):
            raise _refuse(
                f"one output gives one yes/no per sample, but the data has {shape_text(y.shape[1:])} targets per sample",
                f"make the last layer `fc {math.prod(y.shape[1:])}` for one label each",
            )
        if not y.is_floating_point() and len(classes) > 2:
            raise _refuse(
                f"one sigmoid output separates two classes, but the data has {len(classes)}",
                f"end the spec in `fc {len(classes)}` and softmax (cross-entropy)",
            )
        _check_zero_to_one(y)
        names = classes if len(classes) == 2 else ["0", "1"]
        return Task("binary", "bce", 1, names, strip)
    if y.dim() == 1 or math.prod(y.shape[1:]) != out[0]:
        given = "one class label per sample" if y.dim() == 1 else f"{shape_text(y.shape[1:])} targets per sample"
        raise _refuse(
            f"{out[0]} sigmoid outputs need {out[0]} yes/no labels per sample (y of shape N×{out[0]}), but the data has {given}",
            "for one class per sample end the spec in softmax (loss=cross_entropy); for labels, save y as N×K zeros and ones",
        )
    _check_zero_to_one(y)
    names = classes if len(classes) == out[0] else [str(c) for c in range(out[0])]
    return Task("multilabel", "bce", out[0], names, strip)


def _binary_map(out, y, classes, strip) -> Task:
    if out[0] != 1:
        raise _refuse(
            f"bce on a map takes one channel (foreground or not per pixel), but the network outputs {shape_text(out)}",
            f"for {out[0]} classes per pixel end in softmax (or no activation) and use loss=cross_entropy",
        )
    if y.is_floating_point() or tuple(y.shape[1:]) != out[1:]:
        raise _refuse(
            f"the network outputs {shape_text(out)} (a foreground logit per position), but the data's targets are "
            f"{y.dtype} {shape_text(y.shape[1:]) or 'one per sample'}",
            f"per-pixel bce needs one integer 0/1 mask of {shape_text(out[1:])} per sample (y of shape N×{shape_text(out[1:])})",
        )
    _check_zero_to_one(y)
    return Task("pixels", "bce", 2, classes if len(classes) == 2 else ["0", "1"], strip, maps=True)


def _check_zero_to_one(y: torch.Tensor) -> None:
    if y.numel() and (y.min() < 0 or y.max() > 1):
        raise _refuse(
            f"binary cross-entropy needs targets from 0 to 1, but the data's run from {y.min().item():g} to {y.max().item():g}",
            "use 0 and 1 (or probabilities) as targets, or loss=cross_entropy for class labels",
        )


def _mse(out, ends, y, classes) -> Task:
    if not y.is_floating_point():
        raise _refuse(
            "mean squared error needs float targets, but the data's targets are integer class labels",
            "save y as floats (y.astype(np.float32)) for values, or use loss=cross_entropy for classes",
        )
    per_sample = tuple(y.shape[1:]) or (1,)
    if math.prod(per_sample) != math.prod(out) or (len(per_sample) > 1 and per_sample != out):
        raise _refuse(
            f"the network outputs {shape_text(out)} values per sample, but the data has {shape_text(per_sample)} targets per sample",
            f"make the network's output {shape_text(per_sample)}, e.g. end in `fc {math.prod(per_sample)}`",
        )
    names = classes if len(classes) == math.prod(out) else [str(c) for c in range(math.prod(out))]
    return Task("regression", "mse", math.prod(out), names, None, maps=len(per_sample) > 1)
