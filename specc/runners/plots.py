"""curves.png: the loss and the task's metric per epoch, drawn from the rows of metrics.jsonl."""

from __future__ import annotations

import os
from pathlib import Path

from .losses import METRIC_LABELS, Task

# Said once under the plot, since a new user's first question is why the training curve sits above the other.
CAPTION = (
    "train: averaged over the epoch while the weights change, with dropout, augmentation and label smoothing on;\n"
    "val: the epoch's final weights, without them. So the train loss often sits above the validation loss."
)


def curves_title(network: str, run_dir: Path) -> str:
    """The network, and the run where its folder says more than the network's name again."""
    return network if run_dir.name == network else f"{network} ({run_dir.name})"


def write_curves(history: list[dict], path: Path, title: str, task: Task) -> None:
    """Two panels, loss and the task's metric, training and validation; replaced atomically like the checkpoints."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, and no GUI toolkit to import
    from matplotlib import pyplot as plt

    epochs = [row["epoch"] for row in history]
    figure, (loss_ax, metric_ax) = plt.subplots(1, 2, figsize=(10, 4.4), constrained_layout=True)
    panels = ((loss_ax, "loss", f"loss ({task.loss_label()})"), (metric_ax, task.metric, METRIC_LABELS[task.metric]))
    for ax, metric, label in panels:
        for split, style in (("train", "o-"), ("val", "s-")):
            values = [row.get(f"{split}_{metric}") for row in history]
            if any(v is not None for v in values):
                ax.plot(epochs, [float("nan") if v is None else v for v in values], style, label=split, markersize=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    figure.suptitle(title)
    figure.supxlabel(CAPTION, fontsize=8)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}.png")
    figure.savefig(tmp, dpi=100)
    plt.close(figure)
    os.replace(tmp, path)
