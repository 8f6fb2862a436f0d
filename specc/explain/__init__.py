"""`specc explain`: what a trained network learned, as pictures a student can read.

model.py opens the network and computes (filters, feature maps, captum's
occlusion, saliency and Grad-CAM); samples.py reads what to look at;
pictures.py draws; page.py gathers a run into one HTML report. This module
composes them: `explain(...)` writes the PNGs of each sample into a folder.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .model import Explainer
from .samples import Sample

__all__ = ["Explainer", "Sample", "Settings", "explain", "sample_pictures"]


@dataclass(frozen=True)
class Settings:
    layer: str | None = None  # feature maps of this layer only (default: each conv, after its activation)
    window: int | None = None  # occlusion square (default: about a quarter of the image's side)
    stride: int | None = None  # occlusion step (default: half the window)
    top: int = 5  # classes in the bars


def explain(
    explainer: Explainer,
    samples: list[Sample],
    out: str | Path,
    settings: Settings = Settings(),
    progress: Callable[[], None] | None = None,
) -> list[Path]:
    """The filter grid once, then per sample its feature maps, attribution maps and top classes; the paths written."""
    from . import pictures

    out = Path(out)
    explainer.feature_layers(settings.layer)  # a wrong --layer fails before any file is written
    out.mkdir(parents=True, exist_ok=True)
    layer, weights = explainer.first_filters()
    written = [out / "filters.png"]
    pictures.save(pictures.filter_grid(weights, layer), written[0])
    slugs: set[str] = set()
    for sample in samples:
        slug = _unique(_slug(sample.name), slugs)
        for suffix, figure in sample_pictures(explainer, sample, settings):
            written.append(out / f"{slug}-{suffix}.png")
            pictures.save(figure, written[-1])
        if progress is not None:
            progress()
    return written


def sample_pictures(explainer: Explainer, sample: Sample, settings: Settings = Settings()):
    """(name, figure) for one sample: top classes, occlusion beside saliency and Grad-CAM, then feature maps per layer."""
    from . import pictures

    x, classes = sample.x, explainer.classes
    probabilities = explainer.probabilities(x[None])[0]
    yield "top", pictures.top_classes(x, sample.name, probabilities, classes, sample.label, settings.top)
    target = sample.label if sample.label is not None else int(probabilities.argmax())
    window, stride = occlusion_window(x.shape[1:], settings)
    occluded = explainer.occlusion(x, target, window, stride)
    saliency, cam = explainer.saliency(x, target), explainer.grad_cam(x, target)
    yield "attribution", pictures.attribution(x, sample.name, classes[target], occluded, saliency, cam)
    layers = explainer.feature_layers(settings.layer)
    for name, maps in explainer.feature_maps(x, layers).items():
        yield f"features-{_slug(name)}", pictures.feature_grid(maps, name, x, sample.name)


def occlusion_window(size: tuple[int, int], settings: Settings) -> tuple[int, int]:
    """The window and stride: as given, else a quarter of the shorter side and half of that (7 and 3 on 28×28)."""
    window = settings.window or max(1, min(size) // 4)
    return window, settings.stride or max(1, window // 2)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "sample"


def _unique(slug: str, taken: set[str]) -> str:
    candidate, n = slug, 2
    while candidate in taken:
        candidate, n = f"{slug}-{n}", n + 1
    taken.add(candidate)
    return candidate
