"""curves.png: loss and accuracy per epoch, drawn from the rows of metrics.jsonl."""

from __future__ import annotations

import os
from pathlib import Path


def write_curves(history: list[dict], path: Path, title: str) -> None:
    """Two panels, loss and accuracy, training and validation; replaced atomically like the checkpoints."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, and no GUI toolkit to import
    from matplotlib import pyplot as plt

    epochs = [row["epoch"] for row in history]
    figure, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, metric, label in ((loss_ax, "loss", "loss (cross-entropy)"), (acc_ax, "acc", "accuracy")):
        for split, style in (("train", "o-"), ("val", "s-")):
            values = [row.get(f"{split}_{metric}") for row in history]
            if any(v is not None for v in values):
                ax.plot(epochs, [float("nan") if v is None else v for v in values], style, label=split, markersize=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    figure.suptitle(title)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}.png")
    figure.savefig(tmp, dpi=100)
    plt.close(figure)
    os.replace(tmp, path)
