"""The kinds that slide a window over the spatial axes: conv, deconv, pool, upsample.

Their shape rules are shapes.py's integer arithmetic; PyTorch's own limits (pool padding at most
F/2, AvgPool3d's window no larger than its unpadded input, a ceil-mode window that may not start
in the padding, deconv's output_padding below the stride) are checked here, so that `specc check`
refuses exactly what torch would refuse at run time.
"""

from __future__ import annotations

import math
from fractions import Fraction

from . import shapes
from .kind import Field, Inferred, LayerKind, Shape, ShapeError
from .kind import dims as _dims
from .kind import kwargs_text as _kwargs

# ---- helpers shared by the windowed kinds -------------------------------------------


def _spatial(kind: str, x: Shape) -> tuple[int, ...]:
    if not 2 <= len(x) <= 4:
        raise ShapeError(
            f"{kind} needs a C×L, C×H×W or C×D×H×W input, got {shapes.shape_text(x)}",
            "flatten and fc belong after the last conv or pool" if len(x) == 1 else "check the `input` line's shape",
        )
    return x[1:]


def _slide(kind: str, x: Shape, f: int, s: int, p: int | str, dilation: int = 1, ceil: bool = False):
    """Output spatial sizes, padding per axis, formula and warning of one sliding window."""
    spatial = _spatial(kind, x)
    pads = [shapes.resolve_padding(p, w, f, s, dilation) for w in spatial]
    outs, texts, dropped = [], [], []
    for w, pad in zip(spatial, pads, strict=True):
        out, _ = shapes.window_output(w, f, s, pad, dilation, ceil)
        if out <= 0:
            raise _too_small(kind, w, f, s, pad, dilation, out)
        outs.append(out)
        texts.append(shapes.formula(w, f, s, pad, dilation, ceil))
        lost = 0 if ceil else shapes.dropped_pixels(w, f, s, pad, dilation)
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


_UPSAMPLE_MODES = ("nearest", "linear", "bilinear", "trilinear")  # linear modes by the number of spatial axes
_RANK_TEXT = ("", "C×L", "C×H×W", "C×D×H×W")

# ---- the kinds ----------------------------------------------------------------------


class Conv(LayerKind):
    name, short = "conv", "conv"
    help = "convolution: K filters of size F, stride S, padding P"
    example = "conv K=16 F=3"
    aliases = dict.fromkeys(("conv1d", "conv2d", "conv3d", "convolution"), "conv")
    decays = ("weight",)
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
        c, k = x[0], a["K"]
        out, pads, text, warning = _slide("conv", x, a["F"], a["S"], a["P"], a["dilation"])
        _check_groups("conv", c, k, a["groups"], (k, *out))
        params = k * (c // a["groups"]) * a["F"] ** len(spatial) + (k if a["bias"] else 0)
        return Inferred(
            (k, *out),
            params,
            params * shapes.prod(out),
            (shapes.effective_filter(a["F"], a["dilation"]), a["S"]),
            formula=text,
            warning=warning,
            pads=tuple(pads),
        )

    def torch(self, a, x, pads):
        return (
            f"nn.Conv{_dims(x)}d({x[0]}, {a['K']}, {a['F']}"
            + _kwargs(
                stride=a["S"] if a["S"] != 1 else None,
                padding=self.padding(pads),
                dilation=a["dilation"] if a["dilation"] != 1 else None,
                groups=a["groups"] if a["groups"] != 1 else None,
                bias=False if not a["bias"] else None,
            )
            + ")"
        )

    def padding(self, pads) -> int | tuple[int, ...] | None:
        """What to pass as `padding=`; None where there is none or `explicit_pad` applies it."""
        if any(lo != hi for lo, hi in pads):
            return None
        los = tuple(lo for lo, _ in pads)
        if not any(los):
            return None
        return los[0] if len(set(los)) == 1 else los

    def explicit_pad(self, pads) -> tuple[int, ...] | None:
        """F.pad amounts (last axis first) where padding is uneven, as `same` makes it for an even filter.

        torch's own padding="same" would do the same for stride 1, with a warning on every call.
        """
        if all(lo == hi for lo, hi in pads):
            return None
        return tuple(v for lo, hi in reversed(pads) for v in (lo, hi))


def _check_groups(kind: str, c: int, k: int, g: int, recover: Shape) -> None:
    if c % g or k % g:
        both = math.gcd(c, k)
        raise ShapeError(
            f"{kind} groups={g} must divide both the input channels ({c}) and K ({k})",
            f"use a divisor of {both}, e.g. groups=1 or groups={both}" if both > 1 else "only groups=1 fits these channels",
            field="groups",
            recover=recover,
        )


class Deconv(LayerKind):
    """Transposed convolution (nn.ConvTranspose): each input position spreads an F-wide filter over
    the output, S apart, so the map grows; the decoder half of an encoder–decoder. MACs follow
    torchinfo, which counts weights × output positions as for a conv."""

    name, short = "deconv", "deconv"
    help = "transposed convolution: K filters of size F, stride S; (W − 1)·S − 2P + F + output_padding"
    example = "deconv K=16 F=2 S=2"
    aliases = dict.fromkeys(("convtranspose", "convtranspose2d", "conv_transpose", "transposed_conv", "conv2dtranspose"), "deconv")
    decays = ("weight",)
    fields = (
        Field("K", "int", help="number of filters", minimum=1, positional=True),
        Field("F", "int", help="filter size", minimum=1),
        Field("S", "int", 1, "stride: the output grows S times", minimum=1),
        Field("P", "int", 0, "padding taken off each side of the output", minimum=0),
        Field("output_padding", "int", 0, "positions added at the end of each axis, below S", minimum=0),
        Field("dilation", "int", 1, "spacing between filter taps", minimum=1),
        Field("groups", "int", 1, "channel groups", minimum=1),
        Field("bias", "bool", True, "add a learned bias"),
    )

    def infer(self, a, x):
        spatial = _spatial("deconv", x)
        c, k, f, s, p, extra, d = x[0], a["K"], a["F"], a["S"], a["P"], a["output_padding"], a["dilation"]
        if extra >= max(s, d):
            raise ShapeError(
                f"deconv output_padding={extra} must be smaller than the stride S={s} or the dilation ({d})",
                f"PyTorch only adds positions that a stride skips: use output_padding={max(s, d) - 1} or less",
                field="output_padding",
            )
        out = tuple(shapes.transposed_output(w, f, s, p, extra, d) for w in spatial)
        if min(out) <= 0:
            w = spatial[out.index(min(out))]
            raise ShapeError(
                f"deconv output size would be {min(out)}: {shapes.transposed_formula(w, f, s, p, extra, d)}",
                "pad less (P takes positions off the output), or use a larger F or S",
                field="P",
            )
        _check_groups("deconv", c, k, a["groups"], (k, *out))
        texts = [shapes.transposed_formula(w, f, s, p, extra, d) for w in spatial]
        params = c * (k // a["groups"]) * f ** len(spatial) + (k if a["bias"] else 0)
        # An output position gathers at most ⌊(F_eff − 1)/S⌋ + 1 neighbouring inputs, 1/S of an input apart.
        reach = (shapes.effective_filter(f, d) - 1) // s + 1
        formula = texts[0] if len(set(texts)) == 1 else "; ".join(texts)
        return Inferred((k, *out), params, params * shapes.prod(out), (reach, Fraction(1, s)), formula=formula)

    def torch(self, a, x, pads):
        return (
            f"nn.ConvTranspose{_dims(x)}d({x[0]}, {a['K']}, {a['F']}"
            + _kwargs(
                stride=a["S"] if a["S"] != 1 else None,
                padding=a["P"] or None,
                output_padding=a["output_padding"] or None,
                groups=a["groups"] if a["groups"] != 1 else None,
                bias=False if not a["bias"] else None,
                dilation=a["dilation"] if a["dilation"] != 1 else None,
            )
            + ")"
        )


class Pool(LayerKind):
    name, short = "pool", "pool"
    help = "pooling: max or avg over F×F windows with stride S (default F), or global, or avg to out×out"
    example = "pool max F=2"
    aliases = {
        **dict.fromkeys(("maxpool", "maxpool2d", "max_pool", "maxpooling2d"), "pool max"),
        **dict.fromkeys(("avgpool", "avgpool2d", "avg_pool", "averagepooling2d"), "pool avg"),
        **dict.fromkeys(("globalavgpool", "globalaveragepooling2d"), "pool avg global"),
        "adaptiveavgpool2d": "pool avg out=…",
    }
    fields = (
        Field("mode", "word", "max", "max or avg", choices=("max", "avg"), positional=True),
        Field("global", "bool", False, "pool the whole map to 1×1", positional=True),
        Field("F", "int", None, "window size", minimum=1),
        Field("S", "int", None, "stride (defaults to F)", minimum=1),
        Field("P", "int", 0, "padding in pixels, at most F/2 (same, valid and full are conv's)", minimum=0),
        Field("ceil", "bool", False, "round the output size up, as PyTorch's ceil_mode", positional=True),
        Field("out", "int", None, "avg only: pool to out positions per axis, whatever the input size", minimum=1),
    )

    def title(self, a):
        return f"pool {a['mode']}" + (" global" if a["global"] else "")

    def infer(self, a, x):
        spatial = _spatial("pool", x)
        self._check_options(a, x)
        if a["global"]:
            return Inferred((x[0],) + (1,) * len(spatial), sees_whole_map=True, formula="global")
        if a["out"] is not None:
            return self._adaptive(a["out"], x)
        f, s, p = a["F"], a["S"] or a["F"], a["P"]
        if a["mode"] == "avg" and len(spatial) == 3 and min(spatial) < f:
            axis = "DHW"[spatial.index(min(spatial))]
            raise ShapeError(
                f"pool avg F={f} is larger than the {axis} axis ({min(spatial)}) of this {shapes.shape_text(x)} input before padding",
                f"PyTorch's AvgPool3d takes no window larger than its unpadded input (1-D and 2-D pools do): "
                f"use F={min(spatial)} or less, or `pool max`",
                field="F",
            )
        out, _, text, warning = _slide("pool", x, f, s, p, ceil=a["ceil"])
        return Inferred((x[0], *out), window=(f, s), formula=text, warning=warning)

    def _check_options(self, a, x) -> None:
        """The combinations PyTorch refuses, or that would leave an argument doing nothing."""
        if a["out"] is not None and (a["global"] or a["F"] is not None):
            raise ShapeError(
                "pool takes a window F, `global` or out=, only one of them", "out=7 pools any input to 7 per axis", field="out"
            )
        if a["out"] is not None and a["mode"] != "avg":
            raise ShapeError(
                "pool out= averages: write `pool avg out=…`", "for max pooling give a window F, or `pool max global`", field="out"
            )
        if a["out"] is not None and len(x) == 4:
            raise ShapeError(
                "pool avg out= takes a C×L or C×H×W input: torch.onnx cannot export adaptive 3-D pooling",
                "give a window F and stride S that give the size you want, or `pool avg global`",
                field="out",
            )
        if a["ceil"] and (a["global"] or a["out"] is not None):
            raise ShapeError("ceil rounds the output of a window F; global and out= pools have no rounding", "remove `ceil`")
        if a["global"] or a["out"] is not None:
            return
        if a["F"] is None:
            raise ShapeError("pool needs a window size F, or `global`", "write e.g. `pool max F=2`")
        if a["P"] > a["F"] // 2:
            raise ShapeError(
                f"pool padding P={a['P']} must be at most half the window F={a['F']}",
                f"PyTorch pads a pool by at most F/2: use P={a['F'] // 2} or less, or a larger F",
                field="P",
            )

    def _adaptive(self, out: int, x: Shape) -> Inferred:
        spatial = x[1:]
        texts = [f"adaptive {w} → {out}" for w in spatial]
        window = shapes.adaptive_window(max(spatial), out)
        text = texts[0] if len(set(texts)) == 1 else "; ".join(texts)
        return Inferred((x[0],) + (out,) * len(spatial), window=window, formula=text)

    def torch(self, a, x, pads):
        mode = "Max" if a["mode"] == "max" else "Avg"
        if a["global"]:
            return f"nn.Adaptive{mode}Pool{_dims(x)}d(1)"
        if a["out"] is not None:
            return f"nn.AdaptiveAvgPool{_dims(x)}d({a['out']})"
        s = a["S"] or a["F"]
        stride = s if s != a["F"] else None
        ceil = a["ceil"] and self.rounds_up(a, x)
        return f"nn.{mode}Pool{_dims(x)}d({a['F']}" + _kwargs(stride=stride, padding=a["P"] or None, ceil_mode=ceil or None) + ")"

    def rounds_up(self, a, x) -> bool:
        """Whether ceil mode gives any axis more windows than floor mode would.

        Where it does not, the generated pool leaves ceil_mode out: the same windows, and ONNX's
        shape inference, which ignores PyTorch's rule that a last window may not start in the
        padding, then agrees with torch (onnx.checker refuses the export otherwise).
        """
        s, pad = a["S"] or a["F"], (a["P"], a["P"])
        return any(shapes.window_output(w, a["F"], s, pad, ceil=True)[0] > shapes.window_output(w, a["F"], s, pad)[0] for w in x[1:])


class Upsample(LayerKind):
    name, short = "upsample", "up"
    help = "repeat (nearest) or interpolate (linear, bilinear, trilinear) each axis S times larger"
    example = "upsample S=2"
    aliases = dict.fromkeys(("upsampling", "upsampling2d", "interpolate", "resize"), "upsample")
    fields = (
        Field("S", "int", help="scale factor: each axis grows S times", minimum=1, positional=True),
        Field("mode", "word", "nearest", "nearest, or linear, bilinear, trilinear by the input's rank", choices=_UPSAMPLE_MODES),
    )

    def infer(self, a, x):
        spatial = _spatial("upsample", x)
        mode, s = a["mode"], a["S"]
        if mode != "nearest" and mode != _UPSAMPLE_MODES[len(spatial)]:
            right = _UPSAMPLE_MODES[len(spatial)]
            raise ShapeError(
                f"upsample mode={mode} interpolates a {_RANK_TEXT[_UPSAMPLE_MODES.index(mode)]} input, "
                f"but this one is {shapes.shape_text(x)}",
                f"write mode={right}: PyTorch names linear interpolation by the number of axes",
                field="mode",
            )
        # Nearest copies one input position; linear blends two neighbours. Outputs are 1/S input apart.
        reach = 1 if mode == "nearest" else 2
        return Inferred((x[0], *(w * s for w in spatial)), window=(reach, Fraction(1, s)), formula=f"×{s} {mode}")

    def torch(self, a, x, pads):
        mode = "" if a["mode"] == "nearest" else f", mode={a['mode']!r}"
        return f"nn.Upsample(scale_factor={a['S']}{mode})"
