"""`specc train --tensorboard DIR`: the run's figures as TensorBoard event files, through torch.utils.tensorboard.

Per epoch: the losses and the task's metric of both splits (tags `loss/train`,
`loss/val`, `acc/train`...), the learning rate, the pace, and the first conv's
filters as images. TensorBoard is an optional extra; without it the run is
refused before its directory is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import UsageError
from ..windows import Conv

INSTALL_HINT = "install it with: pip install 'specc[tensorboard]'  (or pip install tensorboard)"


def require() -> None:
    """Refuse --tensorboard now, with what to install, where the package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:  # torch.utils.tensorboard raises ImportError itself when `tensorboard` is absent
        raise UsageError("--tensorboard needs the tensorboard package, which is not installed", hint=INSTALL_HINT) from None


class Board:
    """Writes one run's epochs into a TensorBoard log folder; a watcher of train.py's run."""

    def __init__(self, folder: str | Path):
        require()
        self.folder = Path(folder)
        self.writer = None

    def epoch(self, run, row: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        if self.writer is None:
            self.writer = SummaryWriter(log_dir=str(self.folder))
        step = row["epoch"]
        for key, value in row.items():
            split, _, metric = key.partition("_")
            if split in ("train", "val") and value is not None:
                self.writer.add_scalar(f"{metric}/{split}", value, step)
        self.writer.add_scalar("lr", row["lr"], step)
        self.writer.add_scalar("images_per_s", row["images_per_s"], step)
        filters = first_filters(run.net.network, run.learner.module)
        if filters is not None:
            name, images = filters
            self.writer.add_images(f"filters/{name}", images, step)
        self.writer.flush()  # a TensorBoard open beside the run sees each epoch as it ends

    def finish(self, run, test) -> None:
        """The test figures (of the best epoch's weights, at that epoch), where there is a test split."""
        if self.writer is None:
            return
        if test is not None:
            for key, value in test.metrics.items():
                if value is not None:
                    self.writer.add_scalar(f"{key}/test", value, run.best_epoch)
            self.writer.add_scalar("loss/test", test.loss, run.best_epoch)
        self.writer.close()


def first_filters(network, module: torch.nn.Module) -> tuple[str, torch.Tensor] | None:
    """The first 2-D conv's name and its filters as K images (1 or 3 channels), each stretched to [0, 1]."""
    conv = next((layer for layer in network.layers() if isinstance(layer.kind, Conv) and len(layer.in_shape or ()) == 3), None)
    if conv is None:
        return None
    weights = module.get_submodule(conv.name).weight.detach().float().cpu()
    if weights.shape[1] != 3:
        weights = weights.mean(dim=1, keepdim=True)
    low = weights.amin(dim=(1, 2, 3), keepdim=True)
    high = weights.amax(dim=(1, 2, 3), keepdim=True)
    return conv.name, (weights - low) / (high - low).clamp(min=1e-12)
