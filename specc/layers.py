"""Every layer kind, declared once: its fields, shape rule, counts and torch code.

A kind says which arguments it takes (`Field`), what it does to a shape, how
many parameters and multiply-adds it costs, and the PyTorch constructor that
builds it, as source text so that this module never imports torch. Adding a
layer kind means adding one class here and registering it in `KINDS`.

Counting follows torchinfo, which the checker's figures are tested against:
a conv costs (weights + biases) × output positions; batchnorm and fc cost
their parameter count once per sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from . import shapes

Shape = tuple[int, ...]
REQUIRED = object()


class ShapeError(Exception):
    """A layer cannot take the shape it is given.

    `field` names the argument to point at. `recover` is the shape the layer would give all the
    same (fc's K outputs, say), so that the checker can go on and report later mistakes too.
    """

    def __init__(self, message: str, hint: str, field: str | None = None, recover: Shape | None = None):
        super().__init__(message)
        self.message, self.hint, self.field, self.recover = message, hint, field, recover


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # int | number | bool | word | pad
    default: Any = REQUIRED
    help: str = ""
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    below: float | None = None  # exclusive upper bound
    positional: bool = False  # may be written without `name=` (`fc 10`, `pool max`)

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class Inferred:
    shape: Shape
    params: int = 0
    macs: int = 0
    window: tuple[int, int] | None = None  # (effective filter, stride) for the receptive field
    sees_whole_map: bool = False
    formula: str | None = None
    warning: str | None = None


class LayerKind:
    name: ClassVar[str]
    short: ClassVar[str]  # base of automatic names: conv1, bn1, fc1
    fields: ClassVar[tuple[Field, ...]] = ()
    help: ClassVar[str] = ""

    def infer(self, a: dict[str, Any], x: Shape) -> Inferred:
        return Inferred(x)

    def torch(self, a: dict[str, Any], x: Shape) -> str:
        raise NotImplementedError

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


# ---- helpers shared by the windowed kinds -------------------------------------------


def _spatial(kind: str, x: Shape) -> tuple[int, ...]:
    if not 2 <= len(x) <= 4:
        raise ShapeError(
            f"{kind} needs a C×L, C×H×W or C×D×H×W input, got {shapes.shape_text(x)}",
            "flatten and fc belong after the last conv or pool" if len(x) == 1 else "check the `input` line's shape",
        )
    return x[1:]


def _slide(kind: str, x: Shape, f: int, s: int, p: int | str, dilation: int = 1):
    """Output spatial sizes, padding per axis, formula and warning of one sliding window."""
    spatial = _spatial(kind, x)
    pads = [shapes.resolve_padding(p, w, f, s, dilation) for w in spatial]
    outs, texts, dropped = [], [], []
    for w, pad in zip(spatial, pads, strict=True):
        out, _ = shapes.window_output(w, f, s, pad, dilation)
        if out <= 0:
            raise _too_small(kind, w, f, s, pad, dilation, out)
        outs.append(out)
        texts.append(shapes.formula(w, f, s, pad, dilation))
        lost = shapes.dropped_pixels(w, f, s, pad, dilation)
        if lost:
            pixels = "the last pixel" if lost == 1 else f"the last {lost} pixels"
            dropped.append(f"{texts[-1]}: PyTorch floors, so {pixels} of {w} never reach{'es' * (lost == 1)} a window")
    text = texts[0] if len(set(texts)) == 1 else "; ".join(texts)
    warning = f"{kind} does not tile its input: {dropped[0]}" if dropped else None
    return tuple(outs), pads, text, warning


def _too_small(kind: str, w: int, f: int, s: int, pad: tuple[int, int], dilation: int, out: int) -> ShapeError:
    f_eff = shapes.effective_filter(f, dilation)
    filt = f"the filter ({f})" if dilation == 1 else f"the dilated filter ({dilation}·({f} − 1) + 1 = {f_eff})"
    padded = f"the input ({w})" if pad == (0, 0) else f"the padded input ({w} + {pad[0] + pad[1]} = {w + pad[0] + pad[1]})"
    return ShapeError(
        f"{kind} output size would be {out}: {shapes.formula(w, f, s, pad, dilation)}, because {filt} is larger than {padded}",
        "use a smaller F, pad more (P=same keeps the size), or shrink the input less before this layer",
        field="F",
    )


def _dims(x: Shape) -> int:
    return len(x) - 1


def _kwargs(**pairs) -> str:
    return "".join(f", {k}={v!r}" for k, v in pairs.items() if v is not None)


# ---- the kinds ----------------------------------------------------------------------


class Conv(LayerKind):
    name, short = "conv", "conv"
    help = "convolution: K filters of size F, stride S, padding P"
    fields = (
        Field("K", "int", help="number of filters", minimum=1, positional=True),
        Field("F", "int", help="filter size", minimum=1),
        Field("S", "int", 1, "stride", minimum=1),
        Field("P", "pad", 0, "padding: a number, same, valid or full", choices=shapes.PAD_WORDS),
        Field("dilation", "int", 1, "spacing between filter taps", minimum=1),
        Field("groups", "int", 1, "channel groups (groups=C is depthwise)", minimum=1),
        Field("bias", "bool", True, "add a learned bias"),
    )

    def infer(self, a, x):
        spatial = _spatial("conv", x)
        c, k, g = x[0], a["K"], a["groups"]
        out, _, text, warning = _slide("conv", x, a["F"], a["S"], a["P"], a["dilation"])
        if c % g or k % g:
            both = math.gcd(c, k)
            raise ShapeError(
                f"conv groups={g} must divide both the input channels ({c}) and K ({k})",
                f"use a divisor of {both}, e.g. groups=1 or groups={both}" if both > 1 else "only groups=1 fits these channels",
                field="groups",
                recover=(k, *out),
            )
        params = k * (c // g) * a["F"] ** len(spatial) + (k if a["bias"] else 0)
        return Inferred(
            (k, *out),
            params,
            params * shapes.prod(out),
            (shapes.effective_filter(a["F"], a["dilation"]), a["S"]),
            formula=text,
            warning=warning,
        )

    def torch(self, a, x):
        return (
            f"nn.Conv{_dims(x)}d({x[0]}, {a['K']}, {a['F']}"
            + _kwargs(
                stride=a["S"] if a["S"] != 1 else None,
                padding=self.padding(a, x),
                dilation=a["dilation"] if a["dilation"] != 1 else None,
                groups=a["groups"] if a["groups"] != 1 else None,
                bias=False if not a["bias"] else None,
            )
            + ")"
        )

    def padding(self, a, x) -> int | tuple[int, ...] | None:
        """What to pass as `padding=`; None where there is none or `explicit_pad` applies it."""
        pads = self.pads(a, x)
        if any(lo != hi for lo, hi in pads):
            return None
        los = tuple(lo for lo, _ in pads)
        if not any(los):
            return None
        return los[0] if len(set(los)) == 1 else los

    def pads(self, a, x) -> list[tuple[int, int]]:
        return [shapes.resolve_padding(a["P"], w, a["F"], a["S"], a["dilation"]) for w in x[1:]]

    def explicit_pad(self, a, x) -> tuple[int, ...] | None:
        """F.pad amounts (last axis first) where padding is uneven, as `same` makes it for an even filter.

        torch's own padding="same" would do the same for stride 1, with a warning on every call.
        """
        pads = self.pads(a, x)
        if all(lo == hi for lo, hi in pads):
            return None
        return tuple(v for lo, hi in reversed(pads) for v in (lo, hi))


class Pool(LayerKind):
    name, short = "pool", "pool"
    help = "pooling: max or avg over F×F windows with stride S (default F), or global"
    fields = (
        Field("mode", "word", "max", "max or avg", choices=("max", "avg"), positional=True),
        Field("global", "bool", False, "pool the whole map to 1×1", positional=True),
        Field("F", "int", None, "window size", minimum=1),
        Field("S", "int", None, "stride (defaults to F)", minimum=1),
        Field("P", "int", 0, "padding in pixels, at most F/2 (same, valid and full are conv's)", minimum=0),
    )

    def infer(self, a, x):
        spatial = _spatial("pool", x)
        if a["global"]:
            return Inferred((x[0],) + (1,) * len(spatial), sees_whole_map=True, formula="global")
        if a["F"] is None:
            raise ShapeError("pool needs a window size F, or `global`", "write e.g. `pool max F=2`")
        if a["P"] > a["F"] // 2:
            raise ShapeError(
                f"pool padding P={a['P']} must be at most half the window F={a['F']}",
                f"PyTorch pads a pool by at most F/2: use P={a['F'] // 2} or less, or a larger F",
                field="P",
            )
        s = a["S"] or a["F"]
        out, _, text, warning = _slide("pool", x, a["F"], s, a["P"])
        return Inferred((x[0], *out), window=(a["F"], s), formula=text, warning=warning)

    def torch(self, a, x):
        mode = "Max" if a["mode"] == "max" else "Avg"
        if a["global"]:
            return f"nn.Adaptive{mode}Pool{_dims(x)}d(1)"
        s = a["S"] or a["F"]
        return f"nn.{mode}Pool{_dims(x)}d({a['F']}" + _kwargs(stride=s if s != a["F"] else None, padding=a["P"] or None) + ")"


class BatchNorm(LayerKind):
    name, short = "batchnorm", "bn"
    help = "batch normalisation over channels (or features after flatten)"
    fields = (
        Field("eps", "number", 1e-5, "added to the variance", minimum=0),
        Field("momentum", "number", 0.1, "running-average momentum", minimum=0, below=1.0000001),
    )

    def infer(self, a, x):
        if len(x) > 4:
            raise ShapeError(f"batchnorm takes at most 3 spatial axes, got {shapes.shape_text(x)}", "check the `input` line's shape")
        return Inferred(x, 2 * x[0], 2 * x[0])

    def torch(self, a, x):
        extra = _kwargs(eps=a["eps"] if a["eps"] != 1e-5 else None, momentum=a["momentum"] if a["momentum"] != 0.1 else None)
        return f"nn.BatchNorm{max(_dims(x), 1)}d({x[0]}{extra})"


class Dropout(LayerKind):
    name, short = "dropout", "dropout"
    help = "zero activations with probability p while training"
    fields = (Field("p", "number", 0.5, "drop probability", minimum=0, below=1, positional=True),)

    def torch(self, a, x):
        return f"nn.Dropout({a['p']!r})"


class Flatten(LayerKind):
    name, short = "flatten", "flatten"
    help = "C×H×W to one vector of C·H·W features"

    def infer(self, a, x):
        return Inferred((shapes.prod(x),), sees_whole_map=len(x) > 1)

    def torch(self, a, x):
        return "nn.Flatten()"


class Fc(LayerKind):
    """Fully connected. On a C×H×W input it is an error, not an implicit flatten (as Keras'
    Dense would apply itself to the last axis and torch's Linear fails): the spec says `flatten`
    where the features are laid out, so the table shows the 320 that nobody computes by hand."""

    name, short = "fc", "fc"
    help = "fully connected: K outputs from every input feature"
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

    def torch(self, a, x):
        return f"nn.Linear({x[0]}, {a['K']}" + _kwargs(bias=False if not a["bias"] else None) + ")"


class Maxout(LayerKind):
    name, short = "maxout", "maxout"
    help = "max over groups of K consecutive channels (Goodfellow et al. 2013)"
    fields = (Field("K", "int", 2, "pieces per output channel", minimum=2, positional=True),)

    def infer(self, a, x):
        if x[0] % a["K"]:
            raise ShapeError(
                f"maxout K={a['K']} must divide the {x[0]} input channels", "the conv before it should give a multiple of K", field="K"
            )
        return Inferred((x[0] // a["K"], *x[1:]))

    def torch(self, a, x):
        return f"Maxout({a['K']})"


class Activation(LayerKind):
    """An elementwise function with no parameters; `module` is its torch class."""

    module: ClassVar[str]

    def torch(self, a, x):
        args = ", ".join(repr(a[f.name]) for f in self.fields if a[f.name] != f.default)
        return f"nn.{self.module}({args})"


def _activation(name: str, module: str, help: str, *fields: Field) -> type[Activation]:
    return type(name.title(), (Activation,), {"name": name, "short": name, "module": module, "help": help, "fields": fields})


class Softmax(LayerKind):
    name, short = "softmax", "softmax"
    help = "probabilities over channels or classes"

    def torch(self, a, x):
        return "nn.Softmax(dim=1)"


KINDS: dict[str, LayerKind] = {
    kind.name: kind()
    for kind in (
        Conv,
        Pool,
        BatchNorm,
        Dropout,
        Flatten,
        Fc,
        Maxout,
        Softmax,
        _activation("relu", "ReLU", "max(0, x)"),
        _activation("leakyrelu", "LeakyReLU", "x, or slope·x below 0", Field("slope", "number", 0.01, "negative slope", positional=True)),
        _activation("elu", "ELU", "exponential linear unit", Field("alpha", "number", 1.0, "saturation value", positional=True)),
        _activation("gelu", "GELU", "Gaussian error linear unit"),
        _activation("silu", "SiLU", "x·sigmoid(x), a.k.a. swish"),
        _activation("sigmoid", "Sigmoid", "1/(1 + e^−x)"),
        _activation("tanh", "Tanh", "hyperbolic tangent"),
    )
}

# Helper modules that a generated model file defines when a layer needs one.
HELPERS = {
    "Maxout": '''class Maxout(nn.Module):
    """Max over groups of `pieces` consecutive channels."""

    def __init__(self, pieces: int):
        super().__init__()
        self.pieces = pieces

    def forward(self, x):
        return x.unflatten(1, (-1, self.pieces)).amax(2)''',
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

    def torch(self, a, x):
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
