"""Every layer kind, declared once: its fields, shape rule, counts, torch code and facts.

A kind says which arguments it takes (`Field`), what it does to a shape, how
many parameters and multiply-adds it costs, and the PyTorch constructor that
builds it, as source text so that this module never imports torch; and the
facts other stages ask of it (`LayerKind` in kind.py: an example for hints,
batch statistics, which weights decay). Adding a layer kind means adding one
class here (or in windows.py, for a sliding window) and registering it in `KINDS`.

Counting follows torchinfo, which the checker's figures are tested against:
a conv costs (weights + biases) × output positions; batchnorm and fc cost
their parameter count once per sample.
"""

from __future__ import annotations

import math
from typing import ClassVar

from . import shapes
from .kind import REQUIRED, Field, Inferred, LayerKind, ShapeError
from .kind import dims as _dims
from .kind import kwargs_text as _kwargs
from .windows import Conv, Deconv, Pool, Upsample

__all__ = ["HELPERS", "KINDS", "REQUIRED", "Field", "Inferred", "LayerKind", "ShapeError"]


class BatchNorm(LayerKind):
    name, short = "batchnorm", "bn"
    help = "batch normalisation over channels (or features after flatten)"
    batch_statistics = True
    aliases = dict.fromkeys(("bn", "batchnorm2d", "batch_norm", "batchnormalization"), "batchnorm")
    fields = (
        Field("eps", "number", 1e-5, "added to the variance", minimum=0),
        Field("momentum", "number", 0.1, "running-average momentum", minimum=0, below=1.0000001),
    )

    def infer(self, a, x):
        if len(x) > 4:
            raise ShapeError(f"batchnorm takes at most 3 spatial axes, got {shapes.shape_text(x)}", "check the `input` line's shape")
        return Inferred(x, 2 * x[0], 2 * x[0])

    def torch(self, a, x, pads):
        extra = _kwargs(eps=a["eps"] if a["eps"] != 1e-5 else None, momentum=a["momentum"] if a["momentum"] != 0.1 else None)
        return f"nn.BatchNorm{max(_dims(x), 1)}d({x[0]}{extra})"


class LayerNorm(LayerKind):
    """Normalise over the channels at every position, as ConvNeXt's LayerNorm2d; over the features
    of a flat vector. A learned scale and shift per channel: 2C parameters, and MACs as torchinfo
    counts a norm, 2C per sample."""

    name, short = "layernorm", "ln"
    aliases = dict.fromkeys(("ln", "layer_norm", "layernorm2d", "layernormalization"), "layernorm")
    help = "layer normalisation over the channels at each position (or the features after flatten)"
    fields = (Field("eps", "number", 1e-5, "added to the variance (ConvNeXt: 1e-6)", minimum=0),)

    def infer(self, a, x):
        return Inferred(x, 2 * x[0], 2 * x[0])

    def torch(self, a, x, pads):
        module = "nn.LayerNorm" if len(x) == 1 else "ChannelLayerNorm"
        return f"{module}({x[0]}" + _kwargs(eps=a["eps"] if a["eps"] != 1e-5 else None) + ")"


class LayerScale(LayerKind):
    """A learned factor per channel, broadcast over the positions (ConvNeXt's layer_scale, shaped
    C×1×1 as torchvision's so weights copy across). MACs 0: torchinfo counts none for torchvision's,
    an elementwise product like an activation."""

    name, short = "layerscale", "scale"
    aliases = {"layer_scale": "layerscale"}
    help = "multiply each channel by a learned factor, starting at init"
    example = "layerscale 1e-6"
    fields = (Field("init", "number", 1e-6, "the factors' starting value (ConvNeXt: 1e-6)", positional=True),)

    def infer(self, a, x):
        return Inferred(x, x[0])

    def torch(self, a, x, pads):
        return f"LayerScale({x[0]}, {a['init']!r}, {len(x) - 1})"


class Dropout(LayerKind):
    name, short = "dropout", "dropout"
    help = "zero activations with probability p while training"
    example = "dropout 0.5"
    fields = (Field("p", "number", 0.5, "drop probability", minimum=0, below=1, positional=True),)

    def torch(self, a, x, pads):
        return f"nn.Dropout({a['p']!r})"


class Identity(LayerKind):
    name, short = "identity", "identity"
    aliases = dict.fromkeys(("noop", "passthrough"), "identity")
    help = "the input unchanged: an empty branch of a concat, or a placeholder"

    def torch(self, a, x, pads):
        return "nn.Identity()"


class Flatten(LayerKind):
    name, short = "flatten", "flatten"
    help = "C×H×W to one vector of C·H·W features"

    def infer(self, a, x):
        return Inferred((shapes.prod(x),), sees_whole_map=len(x) > 1)

    def torch(self, a, x, pads):
        return "nn.Flatten()"


class Fc(LayerKind):
    """Fully connected. On a C×H×W input it is an error, not an implicit flatten (as Keras'
    Dense would apply itself to the last axis and torch's Linear fails): the spec says `flatten`
    where the features are laid out, so the table shows the 320 that nobody computes by hand."""

    name, short = "fc", "fc"
    help = "fully connected: K outputs from every input feature"
    example = "fc 10"
    aliases = dict.fromkeys(("linear", "dense", "fully_connected"), "fc")
    decays = ("weight",)
    fields = (
        Field("K", "int", help="number of outputs", minimum=1, positional=True),
        Field("bias", "bool", True, "add a learned bias"),
    )

    def infer(self, a, x):
        if len(x) != 1:
            raise ShapeError(
                f"fc needs a flat input, got {shapes.shape_text(x)}",
                f"add `flatten` before fc (it gives {shapes.prod(x):,} features), or `pool avg global` then `flatten`",
                recover=(a["K"],),
            )
        params = x[0] * a["K"] + (a["K"] if a["bias"] else 0)
        return Inferred((a["K"],), params, params)

    def torch(self, a, x, pads):
        return f"nn.Linear({x[0]}, {a['K']}" + _kwargs(bias=False if not a["bias"] else None) + ")"


class Maxout(LayerKind):
    name, short = "maxout", "maxout"
    help = "max over groups of K consecutive channels (Goodfellow et al. 2013)"
    example = "maxout 2"
    fields = (Field("K", "int", 2, "pieces per output channel", minimum=2, positional=True),)

    def infer(self, a, x):
        if x[0] % a["K"]:
            raise ShapeError(
                f"maxout K={a['K']} must divide the {x[0]} input channels", "the conv before it should give a multiple of K", field="K"
            )
        return Inferred((x[0] // a["K"], *x[1:]))

    def torch(self, a, x, pads):
        return f"Maxout({a['K']})"


class Shuffle(LayerKind):
    """ShuffleNet's channel shuffle: channels in `groups` groups, read out one from each group in
    turn, so that the next grouped conv mixes them. A helper module rather than nn.ChannelShuffle,
    which takes no flat input."""

    name, short = "shuffle", "shuffle"
    help = "interleave the channels of `groups` groups (ShuffleNet)"
    example = "shuffle groups=2"
    aliases = dict.fromkeys(("channelshuffle", "channel_shuffle"), "shuffle")
    fields = (Field("groups", "int", help="channel groups to interleave", minimum=1, positional=True),)

    def infer(self, a, x):
        if x[0] % a["groups"]:
            raise ShapeError(
                f"shuffle groups={a['groups']} must divide the {x[0]} input channels",
                f"use a divisor of {x[0]}, e.g. groups={_divisor(x[0])}, or give the layer before it a multiple of {a['groups']} channels",
                field="groups",
                recover=x,
            )
        return Inferred(x)

    def torch(self, a, x, pads):
        return f"ChannelShuffle({a['groups']})"


def _divisor(n: int) -> int:
    """The smallest divisor of n above 1 (n itself if n is prime or 1)."""
    return next((d for d in range(2, math.isqrt(n) + 1) if n % d == 0), n)


class Activation(LayerKind):
    """An elementwise function with no parameters; `module` is its torch class."""

    module: ClassVar[str]

    def torch(self, a, x, pads):
        args = ", ".join(repr(a[f.name]) for f in self.fields if a[f.name] != f.default)
        return f"nn.{self.module}({args})"


def _activation(name: str, module: str, help: str, *fields: Field, aliases: tuple[str, ...] = ()) -> type[Activation]:
    short = f"{name}_" if name[-1].isdigit() else name  # relu6_1, not relu61
    facts = {"name": name, "short": short, "module": module, "help": help, "fields": fields, "aliases": dict.fromkeys(aliases, name)}
    return type(name.title(), (Activation,), facts)


class Softmax(LayerKind):
    name, short = "softmax", "softmax"
    help = "probabilities over channels or classes"

    def torch(self, a, x, pads):
        return "nn.Softmax(dim=1)"


KINDS: dict[str, LayerKind] = {
    kind.name: kind()
    for kind in (
        Conv,
        Deconv,
        Pool,
        Upsample,
        BatchNorm,
        LayerNorm,
        LayerScale,
        Dropout,
        Identity,
        Flatten,
        Fc,
        Maxout,
        Shuffle,
        Softmax,
        _activation("relu", "ReLU", "max(0, x)"),
        _activation("relu6", "ReLU6", "min(max(0, x), 6), as MobileNetV2"),
        _activation(
            "leakyrelu",
            "LeakyReLU",
            "x, or slope·x below 0",
            Field("slope", "number", 0.01, "negative slope", positional=True),
            aliases=("leaky_relu", "lrelu"),
        ),
        _activation("elu", "ELU", "exponential linear unit", Field("alpha", "number", 1.0, "saturation value", positional=True)),
        _activation("gelu", "GELU", "Gaussian error linear unit"),
        _activation("silu", "SiLU", "x·sigmoid(x), a.k.a. swish", aliases=("swish",)),
        _activation("hardswish", "Hardswish", "x·relu6(x + 3)/6, as MobileNetV3", aliases=("hard_swish", "hswish")),
        _activation("sigmoid", "Sigmoid", "1/(1 + e^−x)", aliases=("logistic",)),
        _activation("hardsigmoid", "Hardsigmoid", "relu6(x + 3)/6, as MobileNetV3", aliases=("hard_sigmoid", "hsigmoid")),
        _activation("tanh", "Tanh", "hyperbolic tangent"),
    )
}

# Helper modules that a generated model file defines when a layer needs one.
HELPERS = {
    "Maxout": """class Maxout(nn.Module):
    \"\"\"Max over groups of `pieces` consecutive channels.\"\"\"

    def __init__(self, pieces: int):
        super().__init__()
        self.pieces = pieces

    def forward(self, x):
        return x.unflatten(1, (-1, self.pieces)).amax(2)""",
    "ChannelShuffle": """class ChannelShuffle(nn.Module):
    \"\"\"Channels in `groups` groups, read out one from each group in turn (ShuffleNet).\"\"\"

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        return x.unflatten(1, (self.groups, -1)).transpose(1, 2).flatten(1, 2)""",
    "ChannelLayerNorm": """class ChannelLayerNorm(nn.LayerNorm):
    \"\"\"Layer normalisation over the channels at every position, as ConvNeXt's LayerNorm2d.\"\"\"

    def forward(self, x):
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)""",
    "LayerScale": """class LayerScale(nn.Module):
    \"\"\"A learned factor per channel, broadcast over the positions (ConvNeXt's layer_scale).\"\"\"

    def __init__(self, channels: int, init: float, spatial_dims: int):
        super().__init__()
        self.scale = nn.Parameter(torch.full((channels,) + (1,) * spatial_dims, init))

    def forward(self, x):
        return x * self.scale""",
}


# ---- kinds that a group adds, never written as a line of their own --------------------------------


class StochasticDepth(LayerKind):
    """`residual drop=p`: the body of a residual, skipped at random while training (Huang et al. 2016).

    As torchvision's StochasticDepth(p, mode="row"): each sample's body output is zeroed with
    probability p and the rest scaled by 1/(1 − p); in eval mode it is the identity. A layer of
    its own only so that the table, the state dict's order and the generated forward show it;
    on its own line it would drop the whole network's signal, so the language offers it only
    on a residual."""

    name, short = "stochastic_depth", "stochastic_depth"
    help = "skip the residual body of a random p of the samples while training"
    fields = (Field("p", "number", help="drop probability", minimum=0, below=1),)

    def torch(self, a, x, pads):
        return f"StochasticDepth({a['p']!r})"


GROUP_KINDS: dict[str, LayerKind] = {kind.name: kind() for kind in (StochasticDepth,)}

HELPERS["StochasticDepth"] = '''class StochasticDepth(nn.Module):
    """Zero the residual body of a random p of the samples while training, scale the rest by 1/(1 - p).

    The identity in eval mode; the same as torchvision's StochasticDepth(p, mode="row").
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training:
            return x
        keep = 1.0 - self.p
        noise = torch.empty([x.shape[0]] + [1] * (x.ndim - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * noise.div_(keep)'''
