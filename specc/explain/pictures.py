"""The pictures of `specc explain`, drawn with matplotlib from what model.py computed.

Each figure carries its own explanation (a title that says what is shown, a
colorbar that says what a colour means, class names rather than indices), so
that a student needs no legend elsewhere. Functions return the figure; `save`
and `png` turn it into a file or bytes.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import torch

MAX_MAPS = 64  # feature maps drawn per layer: more would be too small to read


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, and no GUI toolkit to import
    from matplotlib import pyplot as plt

    return plt


def save(figure, path: Path) -> None:
    """Written beside `path` and renamed over it, as the run's other files are."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}.png")
    figure.savefig(tmp, dpi=100)
    pyplot().close(figure)
    os.replace(tmp, path)


def png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    pyplot().close(figure)
    return buffer.getvalue()


def show_image(ax, x: torch.Tensor) -> None:
    """A raw C x H x W sample as a person sees it: grey for one channel, colour for three."""
    if x.shape[0] == 3:
        ax.imshow(x.permute(1, 2, 0).clamp(0, 1).numpy())
    else:
        ax.imshow(x.mean(dim=0).numpy(), cmap="gray", vmin=0, vmax=max(1.0, float(x.max())))
    ax.set_xticks([])
    ax.set_yticks([])


def _grid(n: int, cell: float = 1.1, extra_width: float = 0.8):
    columns = math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    # At least 5 inches wide, so that a grid of four keeps its title whole.
    size = (max(columns * cell + extra_width, 5.0), rows * cell + 0.9)
    figure, axes = pyplot().subplots(rows, columns, figsize=size, squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
    return figure, list(axes.flat)


def filter_grid(weights: torch.Tensor, layer: str):
    """A conv's K x C x F x F filters: in colour where C is 3 (each filter stretched to its own range), else on one shared scale."""
    k, channels, f = weights.shape[0], weights.shape[1], weights.shape[-1]
    figure, axes = _grid(k)
    if channels == 3:
        for ax, w in zip(axes, weights, strict=False):
            low, high = w.min(), w.max()
            ax.imshow(((w - low) / (high - low + 1e-12)).permute(1, 2, 0).numpy(), interpolation="nearest")
        note = "in colour, each filter stretched to its own range"
    else:
        # One channel: the weights themselves on a scale shared by all filters, zero white, so that they compare.
        shown = weights[:, 0] if channels == 1 else weights.mean(dim=1)
        bound = float(shown.abs().max()) or 1.0
        for ax, w in zip(axes, shown, strict=False):
            image = ax.imshow(w.numpy(), cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest")
        figure.colorbar(image, ax=axes, shrink=0.8, label="weight (red +, blue −)")
        note = "weights" if channels == 1 else f"weights averaged over the {channels} input channels"
    figure.suptitle(f"{layer}: the {k} filters ({f}×{f}) of the first conv, {note}", fontsize=9)
    return figure


def feature_grid(maps: torch.Tensor, layer: str, x: torch.Tensor, sample: str):
    """A layer's output maps for one sample (C x H x W) as one mosaic on one shared scale, beside the input image.

    One image of all the maps, not an axes per map: 64 small axes cost a matplotlib second each time.
    """
    channels, h, w = maps.shape
    shown = maps[:MAX_MAPS]
    tiles, columns = mosaic(shown)
    rows = math.ceil(len(shown) / columns)
    maps_width = min(6.0, 0.1 * tiles.shape[1] + 1.5)  # inches
    size = (maps_width + 3.2, max(2.4, maps_width * tiles.shape[0] / tiles.shape[1] + 0.9))
    figure, (image_ax, maps_ax) = pyplot().subplots(
        1, 2, figsize=size, gridspec_kw={"width_ratios": [1.6, maps_width]}, constrained_layout=True
    )
    show_image(image_ax, x)
    image_ax.set_title("input", fontsize=8)
    low, high = float(shown.min()), float(shown.max())
    cmap = pyplot().get_cmap("viridis").with_extremes(bad="white")  # the gaps between maps
    image = maps_ax.imshow(tiles, cmap=cmap, vmin=low, vmax=high if high > low else low + 1, interpolation="nearest")
    maps_ax.set_xticks([(w + 1) * c + w / 2 - 0.5 for c in range(columns)], [str(c) for c in range(columns)], fontsize=6)
    maps_ax.set_yticks([(h + 1) * r + h / 2 - 0.5 for r in range(rows)], [str(r * columns) for r in range(rows)], fontsize=6)
    maps_ax.tick_params(length=0)
    maps_ax.set_frame_on(False)
    maps_ax.set_xlabel(f"map number = row label + column label ({columns} per row)", fontsize=7)
    figure.colorbar(image, ax=maps_ax, shrink=0.8, label="activation")
    more = f", the first {MAX_MAPS} shown" if channels > MAX_MAPS else ""
    figure.suptitle(f"{sample}: feature maps of {layer} ({channels} maps of {h}×{w}{more}), one per filter", fontsize=9)
    return figure


def tiled(images: list[torch.Tensor], columns: int):
    """C x H x W images (grey or RGB, in [0, 1]) as one RGB picture on white, a label's height above each row;
    and each image's top-left corner in it."""
    _, h, w = images[0].shape
    above = max(2, math.ceil(0.45 * h))  # room for two lines of label
    rows = math.ceil(len(images) / columns)
    picture = torch.ones(rows * (h + above), columns * (w + 1) - 1, 3)
    places = []
    for i, x in enumerate(images):
        r, c = divmod(i, columns)
        top, left = r * (h + above) + above, c * (w + 1)
        rgb = x.float().clamp(0, 1).expand(3, h, w) if x.shape[0] == 1 else x[:3].float().clamp(0, 1)
        picture[top : top + h, left : left + w] = rgb.permute(1, 2, 0)
        places.append((top, left))
    return picture.numpy(), places


def mosaic(maps: torch.Tensor):
    """C x H x W maps tiled row by row into one array, a NaN line between neighbours; and the tiles per row."""
    count, h, w = maps.shape
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    tiles = torch.full((rows * (h + 1) - 1, columns * (w + 1) - 1), float("nan"))
    for i, m in enumerate(maps):
        r, c = divmod(i, columns)
        tiles[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = m
    return tiles.numpy(), columns


def attribution(x: torch.Tensor, sample: str, target_name: str, occluded, saliency: torch.Tensor, cam: tuple[str, torch.Tensor]):
    """Image, occlusion map of P(target), saliency and Grad-CAM, side by side over the same pixels."""
    figure, axes = pyplot().subplots(1, 4, figsize=(13, 3.6), constrained_layout=True)
    show_image(axes[0], x)
    axes[0].set_title(f"{sample}\nexplaining: {target_name}", fontsize=9)
    panels = (
        (occluded.probability, "RdYlGn", f"occlusion: P({target_name}) with a\n{occluded.window}×{occluded.window} patch greyed out here",
         f"P({target_name}); whole image {occluded.unoccluded:.2f}", (0, 1), 1.0),
        (saliency, "hot", "saliency: how strongly each pixel\nmoves the class score", "|gradient|", None, 1.0),
        (cam[1], "jet", f"Grad-CAM of {cam[0]}:\nwhere its maps speak for the class", "class evidence", None, 0.5),
    )  # fmt: skip
    for ax, (values, cmap, title, label, limits, alpha) in zip(axes[1:], panels, strict=True):
        show_image(ax, x)  # under the map: the Grad-CAM overlay is read against it, the others cover it
        low, high = limits or (0, float(values.max()) or 1.0)
        image = ax.imshow(values.numpy(), cmap=cmap, vmin=low, vmax=high, alpha=alpha, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        figure.colorbar(image, ax=ax, shrink=0.85, label=label)
    return figure


def top_classes(x: torch.Tensor, sample: str, probabilities: torch.Tensor, classes: list[str], label: int | None, k: int):
    """The image beside bars of its k most probable classes; the true class, where known, in green, a wrong top class in red."""
    k = min(k, len(classes))
    values, indices = probabilities.topk(k)
    figure, (image_ax, bars_ax) = pyplot().subplots(
        1, 2, figsize=(7.5, 0.35 * k + 2.2), gridspec_kw={"width_ratios": [1, 1.6]}, layout="constrained"
    )
    show_image(image_ax, x)
    truth = f"true class: {classes[label]}" if label is not None else "true class not given"
    image_ax.set_title(f"{sample}\n{truth}", fontsize=9)
    colours = [
        "tab:green" if i == label else "tab:red" if rank == 0 and label is not None else "tab:blue"
        for rank, i in enumerate(indices.tolist())
    ]
    names = [classes[i] for i in indices.tolist()]
    bars_ax.barh(range(k), values.numpy(), color=colours)
    bars_ax.set_yticks(range(k), names, fontsize=8)
    bars_ax.invert_yaxis()
    bars_ax.set_xlim(0, 1)
    bars_ax.set_xlabel("probability")
    for row, value in enumerate(values.tolist()):
        bars_ax.text(min(value + 0.02, 0.82), row, f"{value:.1%}", va="center", fontsize=8)
    bars_ax.set_title(f"top {k} classes", fontsize=9)
    return figure
