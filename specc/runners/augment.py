"""Augmentation in bulk on the device: random flips, crops and translations of a whole batch at once.

Each sample draws its own flip and offset, but the batch is moved with a few tensor operations rather
than per-sample transforms, which cost more than small networks take to compute. `augment_pair` moves
segmentation and regression maps with their images.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F  # noqa: N812 (the name every PyTorch reader knows)

from ..errors import UsageError
from ..shapes import shape_text


def check_augmentation(kinds: list[str], input_shape: tuple[int, ...]) -> None:
    shape = shape_text(input_shape)
    if len(input_shape) == 1 and kinds:
        raise UsageError(f"augmentation flips and shifts 1-D and 2-D inputs, not a plain vector of {shape}", hint="use --augment none")
    if len(input_shape) == 4 and set(kinds) & {"crop", "translate"}:
        raise UsageError(f"crop and translate work on 1-D and 2-D inputs, not {shape}", hint="use --augment flip, or none")


def augment(x: torch.Tensor, kinds: list[str]) -> torch.Tensor:
    """Random horizontal flips and shifts of a batch of raw images (N x C x [H x] W), each sample its own.

    `crop` is torchvision's RandomCrop with zero padding of 1/8 of the size
    (4 pixels for 28 or 32), which is a random shift with zeros shifted in;
    `translate` shifts by up to 1/10 of the size (RandomAffine's translate=0.1).
    """
    if not kinds:
        return x
    if "flip" in kinds:
        flip = torch.rand(len(x), device=x.device) < 0.5
        x = torch.where(flip.view(-1, *[1] * (x.dim() - 1)), x.flip(-1), x)
    for kind, fraction in (("crop", 1 / 8), ("translate", 1 / 10)):
        if kind in kinds:
            x = shift(x, *[max(1, round(size * fraction)) if size > 1 else 0 for size in x.shape[2:]])
    return x


def augment_pair(x: torch.Tensor, maps: torch.Tensor, kinds: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """`augment` of images and their target maps by the same flips and shifts, as extra channels.

    `maps` are class masks (N x H x W; pixels shifted in are class 0) or values (N x C x H x W; shifted in as 0).
    """
    if not kinds:
        return x, maps
    masks = maps.dim() == x.dim() - 1
    moved = augment(torch.cat([x, maps.unsqueeze(1).to(x.dtype) if masks else maps.to(x.dtype)], 1), kinds)
    if masks:
        return moved[:, :-1], moved[:, -1].round().long()
    return moved[:, : x.shape[1]], moved[:, x.shape[1] :]


def shift(x: torch.Tensor, *max_shift: int) -> torch.Tensor:
    """Each sample moved by its own random offset of up to ±max_shift pixels per axis, zeros filling in."""
    flat = x.dim() == 3
    if flat:  # 1-D signals shift along their one axis
        x, max_shift = x.unsqueeze(2), (0, *max_shift)
    n, c, h, w = x.shape
    dy, dx = max_shift
    padded = F.pad(x, (dx, dx, dy, dy))
    rows = torch.randint(0, 2 * dy + 1, (n, 1), device=x.device) + torch.arange(h, device=x.device)
    cols = torch.randint(0, 2 * dx + 1, (n, 1), device=x.device) + torch.arange(w, device=x.device)
    out = padded.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, w + 2 * dx))
    out = out.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))
    return out.squeeze(2) if flat else out
