"""The autocast type a run computes in: `precision=` (fp32, bf16, fp16, auto) resolved for a device.

Shared by training (train.py) and `specc eval` (evaluate.py), so that both read `auto` alike.
"""

from __future__ import annotations

from pathlib import Path

import torch


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast type, or None for plain fp32. `auto` picks bf16 only where the hardware computes it natively."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and _cpu_has_native_bf16():
        return torch.bfloat16
    return None


def precision_name(dtype: torch.dtype | None) -> str:
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")


def _cpu_has_native_bf16() -> bool:
    # oneDNN emulates bf16 on any AVX-512 CPU, which is slower than fp32; only these flags make it pay.
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return ("avx512_bf16" in flags or "amx_bf16" in flags) and torch.ops.mkldnn._is_mkldnn_bf16_supported()
