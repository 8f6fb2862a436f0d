"""confusion.png and mistakes.png: where a classifier goes wrong on the test split, as pictures.

`specc train` writes them into the run directory (before test.json, which stays
the run's last write) and `specc eval -o DIR` into DIR. The confusion matrix is
counted here from the predictions, the same count as the one in test.json.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

MISTAKES_SHOWN = 16  # the most confident wrong answers in the grid


@torch.inference_mode()
def predict_probabilities(model: nn.Module, x: torch.Tensor, normalise, batch: int = 512) -> torch.Tensor:
    """N x classes probabilities of raw samples, from a model that puts out logits."""
    model.eval()
    return torch.cat([model(normalise(x[i : i + batch])).float().softmax(dim=1).cpu() for i in range(0, len(x), batch)])


def confusion_counts(predicted: torch.Tensor, true: torch.Tensor, classes: int) -> torch.Tensor:
    """counts[true][predicted]."""
    return torch.bincount(true.cpu() * classes + predicted.cpu(), minlength=classes * classes).view(classes, classes)


def write_pictures(model: nn.Module, x: torch.Tensor, y: torch.Tensor, normalise, classes: list[str], folder: Path) -> None:
    """confusion.png and mistakes.png of a classifier (logits out) on raw test samples `x` with labels `y`;
    mistakes.png for 2-D images only."""
    from ..errors import printable
    from ..explain import pictures

    classes = [printable(name) for name in classes]  # a control character in a name has no glyph to draw
    probabilities = predict_probabilities(model, x, normalise)
    confidence, predicted = probabilities.max(dim=1)
    pictures.save(confusion_figure(confusion_counts(predicted, y, len(classes)), classes), folder / "confusion.png")
    if x.dim() != 4:  # only 2-D images (N x C x H x W) can be shown as a grid; 1-D and 3-D samples get the matrix alone
        return
    wrong = (predicted != y.cpu()).nonzero().flatten()
    worst = wrong[confidence[wrong].argsort(descending=True)][:MISTAKES_SHOWN]
    shown = [(x[i].cpu(), classes[y[i]], classes[predicted[i]], float(confidence[i])) for i in worst.tolist()]
    pictures.save(mistakes_figure(shown, len(wrong), len(x)), folder / "mistakes.png")


def confusion_figure(counts: torch.Tensor, classes: list[str]):
    from ..explain.pictures import pyplot

    n = len(classes)
    size = min(max(4.5, 0.55 * n + 2.5), 14)
    figure, ax = pyplot().subplots(figsize=(size + 1, size), layout="constrained")
    rates = counts / counts.sum(dim=1, keepdim=True).clamp(min=1)
    image = ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    if n <= 20:  # the counts fit in their cells
        for (i, j), count in zip(((i, j) for i in range(n) for j in range(n)), counts.flatten().tolist(), strict=True):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7, color="white" if rates[i, j] > 0.5 else "black")
    ticks = classes if n <= 30 else [str(i) for i in range(n)]
    ax.set_xticks(range(n), ticks, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n), ticks, fontsize=7)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = counts.diag().sum().item() / max(counts.sum().item(), 1)
    heading = f"confusion matrix: {counts.sum().item():,} test samples, accuracy {accuracy:.1%}"
    ax.set_title(f"{heading}\n(numbers: counts; colour: share of the true class)", fontsize=9)
    figure.colorbar(image, ax=ax, shrink=0.8, label="share of the row")
    return figure


def mistakes_figure(shown: list[tuple[torch.Tensor, str, str, float]], wrong: int, total: int):
    """The most confidently misclassified samples in one image, each labelled with its true and predicted class.

    One axes and a text per sample, not an axes per sample: every run draws this, and sixteen axes
    cost a second of matplotlib each time.
    """
    from ..explain.pictures import pyplot, tiled

    heading = f"the {len(shown)} most confident mistakes ({wrong:,} of {total:,} test samples are wrong)"
    if not shown:
        figure, ax = pyplot().subplots(figsize=(5.5, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no mistakes", ha="center", va="center")
        figure.suptitle(heading, fontsize=9)
        return figure
    columns = min(len(shown), 4)
    image, places = tiled([x for x, *_ in shown], columns)
    figure, ax = pyplot().subplots(figsize=(1.6 * columns + 0.4, 1.8 * math.ceil(len(shown) / columns) + 0.5), layout="constrained")
    ax.imshow(image, interpolation="nearest")
    ax.axis("off")
    width = shown[0][0].shape[-1]
    for (top, left), (_, true, predicted, confidence) in zip(places, shown, strict=True):
        label = f"true: {true}\npred: {predicted} {confidence:.0%}"
        ax.text(left + width / 2, top - 0.8, label, ha="center", va="bottom", fontsize=6, color="darkred")
    figure.suptitle(heading, fontsize=9)
    return figure
