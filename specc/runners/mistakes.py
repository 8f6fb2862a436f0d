"""confusion.png and mistakes.png: where a classifier goes wrong on the test split, as pictures.

`specc train` writes them into the run directory (before test.json, which stays
the run's last write) and `specc eval -o DIR` into DIR. The confusion matrix is
counted here from the predictions, the same count as the one in test.json.
"""

from __future__ import annotations

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
    """confusion.png and mistakes.png of a classifier (logits out) on raw test samples `x` with labels `y`."""
    from ..explain import pictures

    probabilities = predict_probabilities(model, x, normalise)
    confidence, predicted = probabilities.max(dim=1)
    pictures.save(confusion_figure(confusion_counts(predicted, y, len(classes)), classes), folder / "confusion.png")
    wrong = (predicted != y.cpu()).nonzero().flatten()
    worst = wrong[confidence[wrong].argsort(descending=True)][:MISTAKES_SHOWN]
    shown = [(x[i].cpu(), classes[y[i]], classes[predicted[i]], float(confidence[i])) for i in worst.tolist()]
    pictures.save(mistakes_figure(shown, len(wrong), len(x)), folder / "mistakes.png")


def confusion_figure(counts: torch.Tensor, classes: list[str]):
    from ..explain.pictures import pyplot

    n = len(classes)
    size = min(max(4.5, 0.55 * n + 2.5), 14)
    figure, ax = pyplot().subplots(figsize=(size + 1, size))
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
    figure.tight_layout()
    return figure


def mistakes_figure(shown: list[tuple[torch.Tensor, str, str, float]], wrong: int, total: int):
    """The most confidently misclassified samples, each titled with its true and predicted class."""
    from ..explain.pictures import _grid, show_image

    figure, axes = _grid(max(len(shown), 1), cell=1.6, extra_width=0)
    for ax, (x, true, predicted, confidence) in zip(axes, shown, strict=False):
        show_image(ax, x)
        ax.set_title(f"true: {true}\npred: {predicted} {confidence:.0%}", fontsize=6, color="darkred")
    if not shown:
        axes[0].text(0.5, 0.5, "no mistakes", ha="center", va="center")
    figure.suptitle(f"the {len(shown)} most confident mistakes ({wrong:,} of {total:,} test samples are wrong)", fontsize=9)
    figure.tight_layout()
    return figure
