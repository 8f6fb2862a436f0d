"""A trained network opened for looking inside: its filters, feature maps, occlusion, saliency and Grad-CAM.

Everything here takes raw samples as training stores them (C x H x W floats in
[0, 1]) and normalises them itself, so that pictures show the image a person
sees while the network sees what it was trained on. Attribution is captum's
(`Occlusion`, `Saliency`, `LayerGradCam`): its sliding windows, baselines and
hooks are tested by PyTorch's own team.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..api import Net, load
from ..errors import InputFileError, UsageError, printable
from ..ir import Layer
from ..layers import Activation
from ..runners.evaluate import Normalise
from ..shapes import shape_text
from ..suggest import did_you_mean
from ..windows import Conv

OCCLUSIONS_PER_BATCH = 32  # occluded copies per forward pass: one at a time costs a forward's overhead per position


class _Normalised(nn.Module):
    """Raw samples in, class probabilities (or logits) out: the network as a person would query it."""

    def __init__(self, logits: nn.Module, normalise: Normalise, probabilities: bool):
        super().__init__()
        self.logits, self.normalise, self.probabilities = logits, normalise, probabilities

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.logits(self.normalise(x))
        return out.softmax(dim=1) if self.probabilities else out


@dataclass
class Occluded:
    """What occlusion found for one image and class: the probability with each region greyed out."""

    probability: torch.Tensor  # H x W: P(target) averaged over the windows that covered each pixel
    unoccluded: float  # P(target) of the whole image
    window: int
    stride: int


class Explainer:
    """`Explainer.open("net.cnn", "best.safetensors")`: a classifier with its weights, ready to be looked into."""

    def __init__(self, net: Net, module: nn.Module, classes: list[str], mean: list[float], std: list[float], device="cpu"):
        """`module` puts out logits (see losses.logits_model) and holds its weights; training passes its own."""
        shape = net.input_shape
        if len(shape) != 3:
            raise UsageError(
                f"{net.name} takes {shape_text(shape)} samples; explain draws 2-D images (C×H×W)",
                hint="filters, feature maps and occlusion are pictures of images: use a network whose input is C×H×W",
            )
        self.net, self.module, self.mean = net, module, mean
        self.classes = [printable(name) for name in classes]  # drawn as titles: a control character has no glyph
        self.device = torch.device(device)
        normalise = Normalise(mean, std, self.device, sample_dims=len(shape))  # as training fed it
        self.probabilities_model = _Normalised(module, normalise, probabilities=True).to(self.device).eval()
        self.logits_model = _Normalised(module, normalise, probabilities=False).to(self.device).eval()

    @classmethod
    def open(cls, spec: str | Path | Net, weights: str | Path, device: str = "cpu") -> Explainer:
        """The network of `spec` with the weights of a specc run."""
        from ..runners.evaluate import trained_normalisation
        from ..runners.losses import logits_model
        from ..runners.weights import load_strict

        net = spec if isinstance(spec, Net) else load(spec)
        net.check()
        module = logits_model(net.network, net.to_torch())
        hint = "explain with the spec the weights were trained from (the run directory keeps it as spec.cnn)"
        meta = load_strict(module, Path(weights), net.source.path, net.name, hint)
        channels = net.input_shape[0]
        # Weights from elsewhere carry no normalisation: take pixels as they are (mean 0.5 as the occluding grey).
        mean, std = trained_normalisation(meta, torch.full((1, channels, 1, 1), 0.5), str(weights), channels)
        return cls(net, module, _classes(meta, net, str(weights)), mean, std, device)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.net.input_shape)

    # ---- what the network holds --------------------------------------------------------

    def convs(self) -> list[Layer]:
        return [layer for layer in self.net.network.layers() if isinstance(layer.kind, Conv) and len(layer.in_shape or ()) == 3]

    def first_filters(self) -> tuple[str, torch.Tensor]:
        """The first conv's name and its weights, K x C x F x F."""
        convs = self.convs()
        if not convs:
            raise UsageError(f"{self.net.name} has no 2-D conv layer, so it has no filters to draw")
        layer = convs[0]
        return layer.name, self.module.get_submodule(layer.name).weight.detach().cpu()

    def feature_layers(self, name: str | None = None) -> list[Layer]:
        """The layers whose outputs are drawn as feature maps: `name`, or each conv's activation (the conv itself if none follows)."""
        layers = self.net.network.layers()
        if name is not None:
            chosen = [layer for layer in layers if layer.name == name]
            if not chosen:
                hint = did_you_mean(name, [layer.name for layer in layers]) or f"the layers are {', '.join(lr.name for lr in layers)}"
                raise UsageError(f"{self.net.name} has no layer named {name!r}", hint=hint)
            if len(chosen[0].out_shape or ()) != 3:
                shown = shape_text(chosen[0].out_shape)
                raise UsageError(f"layer {name} puts out {shown}, not C×H×W maps", hint="name a conv or pool layer")
            return chosen
        return [_after_activation(layers, i) for i, layer in enumerate(layers) if layer in self.convs()]

    # ---- what it does with one sample ------------------------------------------------------

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """N x classes probabilities of N raw samples."""
        return torch.cat([self.probabilities_model(part.to(self.device)).cpu() for part in x.split(256)])

    @torch.no_grad()
    def feature_maps(self, x: torch.Tensor, layers: list[Layer]) -> dict[str, torch.Tensor]:
        """Each layer's output for one raw sample (C x H x W), read by forward hooks."""
        maps: dict[str, torch.Tensor] = {}
        hooks = [
            self.module.get_submodule(layer.name).register_forward_hook(
                lambda m, i, out, name=layer.name: maps.__setitem__(name, out[0].cpu())
            )
            for layer in layers
        ]
        try:
            self.probabilities_model(x[None].to(self.device))
        finally:
            for hook in hooks:
                hook.remove()
        return maps

    def occlusion(self, x: torch.Tensor, target: int, window: int, stride: int) -> Occluded:
        """P(target) with a `window`-square of the training mean (what the network reads as nothing) slid over the image."""
        from captum.attr import Occlusion

        channels, height, width = x.shape
        if window > min(height, width):
            raise UsageError(
                f"the occlusion window ({window}×{window}) is larger than the image ({height}×{width})",
                hint=f"choose --window {max(1, min(height, width) // 4)} or another size up to {min(height, width)}",
            )
        if not 1 <= stride:
            raise UsageError(f"the occlusion stride must be 1 or more, not {stride}")
        sample = x[None].to(self.device)
        baseline = torch.tensor(self.mean, dtype=sample.dtype, device=self.device).view(1, channels, 1, 1).expand_as(sample)
        with torch.no_grad():
            unoccluded = self.probabilities_model(sample)[0, target].item()
            # captum's attribution at a pixel is the mean drop of P(target) over the windows that covered it.
            drop = Occlusion(self.probabilities_model).attribute(
                sample,
                target=target,
                sliding_window_shapes=(channels, window, window),
                strides=(channels, stride, stride),
                baselines=baseline,
                perturbations_per_eval=OCCLUSIONS_PER_BATCH,
            )
        return Occluded((unoccluded - drop[0, 0]).cpu(), unoccluded, window, stride)

    def saliency(self, x: torch.Tensor, target: int) -> torch.Tensor:
        """|d logit(target) / d pixel|, the largest over channels: H x W."""
        from captum.attr import Saliency

        sample = x[None].to(self.device).requires_grad_()
        return Saliency(self.logits_model).attribute(sample, target=target, abs=True)[0].amax(dim=0).detach().cpu()

    def grad_cam(self, x: torch.Tensor, target: int) -> tuple[str, torch.Tensor]:
        """Grad-CAM of the last conv for `target`, upsampled to the image: its name, and H x W."""
        from captum.attr import LayerAttribution, LayerGradCam

        layer = self.feature_layers()[-1]
        module = self.module.get_submodule(layer.name)
        sample = x[None].to(self.device)
        cam = LayerGradCam(self.logits_model, module).attribute(sample, target=target, relu_attributions=True)
        upsampled = LayerAttribution.interpolate(cam, tuple(x.shape[1:]), interpolate_mode="bilinear")
        return layer.name, upsampled[0, 0].detach().cpu()


def _after_activation(layers: list[Layer], index: int) -> Layer:
    """The activation that follows the conv at `index` (past a batchnorm), or the conv itself."""
    for layer in layers[index + 1 :]:
        if isinstance(layer.kind, Activation):
            return layer
        if not layer.kind.batch_statistics:
            break
    return layers[index]


def _classes(meta: dict[str, str], net: Net, where: str) -> list[str]:
    from ..runners.metadata import read_metadata

    outputs = net.network.output_shape or ()
    if len(outputs) != 1 or outputs[0] < 2:
        raise UsageError(
            f"{net.name} puts out {shape_text(outputs)}, not one score per class: explain draws the evidence for a class",
            hint="explain a classifier (a spec ending in fc N, optionally softmax)",
        )
    classes = read_metadata(meta, where).get("classes")
    if classes is None:
        return [str(i) for i in range(outputs[0])]
    if len(classes) != outputs[0]:
        raise InputFileError(f"{where} names {len(classes)} classes, but {net.name} puts out {outputs[0]} scores")
    return classes
