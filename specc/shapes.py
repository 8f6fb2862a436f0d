"""Shape arithmetic as pure integer functions: no torch, no specc types.

The lecture formula for a sliding window (conv or pool) over a size W with
filter F, stride S and padding P on each side is (W - F + 2P)/S + 1. PyTorch
floors a non-integer result, dropping the last pixels; we do the same and let
the caller warn. Dilation widens the filter to d(F - 1) + 1. Padding may be
asymmetric (an even filter with `same`), so it is passed as (low, high).
"""

from __future__ import annotations

import math
from fractions import Fraction

PAD_WORDS = ("same", "valid", "full")


def effective_filter(f: int, dilation: int = 1) -> int:
    return dilation * (f - 1) + 1


def resolve_padding(p: int | str, size: int, f: int, s: int, dilation: int = 1) -> tuple[int, int]:
    """Padding before and after one spatial axis, as PyTorch and Keras apply it.

    `same` keeps ceil(size / s) positions; the odd pixel of padding goes after,
    as in both frameworks. `full` lets every filter position touch the input.
    """
    f_eff = effective_filter(f, dilation)
    if p == "valid":
        return 0, 0
    if p == "full":
        return f_eff - 1, f_eff - 1
    if p == "same":
        total = max((-(-size // s) - 1) * s + f_eff - size, 0)  # integer ceil: sizes may exceed a float's precision
        return total // 2, total - total // 2
    return int(p), int(p)


def window_output(size: int, f: int, s: int, pad: tuple[int, int], dilation: int = 1, ceil: bool = False) -> tuple[int, bool]:
    """Output positions of a window sliding over one axis, and whether the division was exact.

    With `ceil` the division rounds up, as PyTorch's ceil_mode, but a last window that would start
    in the right padding (past the input and the left padding) is dropped, as PyTorch drops it.
    """
    span = size + pad[0] + pad[1] - effective_filter(f, dilation)
    out = (span + (s - 1 if ceil else 0)) // s + 1
    if ceil and (out - 1) * s >= size + pad[0]:
        out -= 1
    return out, span < 0 or span % s == 0


def dropped_pixels(size: int, f: int, s: int, pad: tuple[int, int], dilation: int = 1) -> int:
    """Real input pixels at the end of an axis that no window covers because the stride overshoots.

    Only counted where windows touch each other (F ≥ S): with F < S the gaps between
    windows skip pixels by design. Padding that no window reaches is no loss.
    """
    f_eff = effective_filter(f, dilation)
    if f_eff < s:
        return 0
    out, _ = window_output(size, f, s, pad, dilation)
    last_covered = (out - 1) * s + f_eff - 1  # in padded coordinates
    return max(0, pad[0] + size - 1 - last_covered)


def formula(size: int, f: int, s: int, pad: tuple[int, int], dilation: int = 1, ceil: bool = False) -> str:
    """The lecture formula with the numbers filled in, e.g. `(32 − 5 + 2·2)/1 + 1 = 32`; ⌈ ⌉ in ceil mode."""
    f_eff = effective_filter(f, dilation)
    padding = f"2·{pad[0]}" if pad[0] == pad[1] else f"{pad[0]}+{pad[1]}"
    out, exact = window_output(size, f, s, pad, dilation, ceil)
    if ceil:
        text = f"⌈({size} − {f_eff} + {padding})/{s}⌉ + 1"
        rounded = -(-(size + pad[0] + pad[1] - f_eff) // s) + 1
        return f"{text} = {rounded}" + (f" → {out}: a window may not start in the padding" if out != rounded else "")
    text = f"({size} − {f_eff} + {padding})/{s} + 1"
    if exact:
        return f"{text} = {out}"
    value = (size + pad[0] + pad[1] - f_eff) / s + 1
    return f"{text} = {value:g} → {out}"


def transposed_output(size: int, f: int, s: int, p: int, output_padding: int = 0, dilation: int = 1) -> int:
    """Output positions of a transposed conv: (W − 1)·S − 2P + d(F − 1) + 1 + output_padding."""
    return (size - 1) * s - 2 * p + effective_filter(f, dilation) + output_padding


def transposed_formula(size: int, f: int, s: int, p: int, output_padding: int = 0, dilation: int = 1) -> str:
    """`(16 − 1)·2 − 2·1 + 3 + 1 = 32`: the transposed conv's rule with the numbers filled in."""
    out = transposed_output(size, f, s, p, output_padding, dilation)
    return f"({size} − 1)·{s} − 2·{p} + {effective_filter(f, dilation)} + {output_padding} = {out}"


def adaptive_window(size: int, out: int) -> tuple[int, Fraction | int]:
    """Largest window and the stride between windows of adaptive pooling from `size` to `out` positions.

    Window i spans [floor(i·size/out), ceil((i + 1)·size/out)), as PyTorch's AdaptiveAvgPool. With
    size = q·out + r, that is q or q + 1 long, and q + 2 where r exceeds gcd(r, out): worked out, not
    counted window by window, so that a large `out` costs nothing.
    """
    q, r = divmod(size, out)
    largest = q if r == 0 else q + 1 + (r > math.gcd(r, out))
    stride = Fraction(size, out)
    return largest, int(stride) if stride.denominator == 1 else stride


def receptive_field(rf, jump, f_eff: int, s):
    """Receptive field and jump (input pixels between neighbouring outputs) after one window.

    An upsampling layer has a stride below one (a Fraction), so past it the jump, and the
    receptive field after it, may be fractions of an input pixel; the table shows them rounded up.
    """
    return rf + (f_eff - 1) * jump, jump * s


def whole_map(rf: int, jump: int, spatial: tuple[int, ...]) -> int:
    """Receptive field of a layer that sees every position of its input (global pool, flatten)."""
    return rf + (max(spatial, default=1) - 1) * jump


def prod(values) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def shape_text(shape: tuple[int | None, ...] | None) -> str:
    """`3×32×32`, the one way a shape is written for a user; `?` for what is not known."""
    return "?" if shape is None else "×".join("?" if d is None else str(d) for d in shape)
