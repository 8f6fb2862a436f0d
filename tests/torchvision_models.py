"""torchvision's models, importable next to the CPU torch, and their weights made fully random.

PyPI's torchvision 0.28.0, the release that pairs with torch 2.13, is a CUDA build: its `_C`
extension does not load next to the CPU torch, and `import torchvision` then fails in
`torchvision/_meta_registrations.py` ("operator torchvision::nms does not exist"), because that
module registers fake kernels for two operators the extension would have defined. The models
need neither operator, so where the extension does not load the two are declared here (schemas
as in torchvision's csrc/ops/nms.cpp) before torchvision is imported. Where it loads (a CPU
build of torchvision), nothing is declared.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

_declared: list[torch.library.Library] = []  # kept alive: a Library's definitions go when it is collected


def _declare_the_operators_the_extension_would() -> None:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        pytest.skip("torchvision is not installed (pip install --no-deps torchvision==0.28.0)", allow_module_level=True)
    extension = sorted(Path(spec.origin).parent.glob("_C*.so")) + sorted(Path(spec.origin).parent.glob("_C*.pyd"))
    try:
        torch.ops.load_library(str(extension[0]))
        return
    except (IndexError, OSError):
        pass
    if _declared:
        return
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _declared.append(lib)


_declare_the_operators_the_extension_would()
import torchvision.models  # noqa: E402  (only after the operators exist)

models = torchvision.models


def build(name: str, **kwargs) -> torch.nn.Module:
    """torchvision.models.<name> with random initial weights (nothing is downloaded), in eval mode."""
    torch.manual_seed(0)
    return getattr(models, name)(weights=None, **kwargs).eval()


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every bias and every batchnorm's affine and running statistics random values.

    torchvision's init leaves biases at 0, batchnorms at weight 1, bias 0, mean 0, variance 1:
    a layer that drops or swaps a bias or a statistic would still agree. The weights keep
    torchvision's own random init, which keeps a deep net's activations at a sane scale.
    Layernorm weights and ConvNeXt's layer scales are made random too: at torchvision's 1e-6 a
    layer scale hides its whole residual branch from a comparison at 1e-4.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
                if module.affine:
                    module.weight.copy_(torch.rand(module.weight.shape, generator=generator) + 0.5)
            if isinstance(module, torch.nn.LayerNorm) and module.elementwise_affine:
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator) + 0.5)
            scale = getattr(module, "layer_scale", None)
            if isinstance(scale, torch.nn.Parameter):
                scale.copy_(torch.rand(scale.shape, generator=generator) + 0.5)
            bias = getattr(module, "bias", None)
            if isinstance(bias, torch.nn.Parameter):
                bias.copy_(torch.randn(bias.shape, generator=generator) * 0.1)
    return model


def in_spec_order(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision's state dict in the order, and the shapes, a spec writes the same layers in.

    `state_dict` lists a module's own parameters before its children's, so ConvNeXt's CNBlock
    lists its `layer_scale` before its `block`, though it is applied after; and its `block` applies
    two nn.Linear to a channels-last tensor, which a spec writes as the 1x1 convs they equal.
    (RegNet's `proj`, assigned before its body `f`, needs nothing here: the spec says
    `shortcut_first`.) Every other model comes through unchanged.
    """
    keys = [k for k in state if not k.endswith(".layer_scale")]
    for key in [k for k in state if k.endswith(".layer_scale")]:
        owner = key.removesuffix("layer_scale") + "block."
        keys.insert(max(i for i, k in enumerate(keys) if k.startswith(owner)) + 1, key)
    return {k: state[k][:, :, None, None] if ".block." in k and state[k].ndim == 2 else state[k] for k in keys}
