"""Checkpoints as safetensors files, written atomically, never pickled.

A safetensors file holds named tensors and a flat `str -> str` metadata map.
Model weights fit that as they are. Optimiser and scheduler states are nested
Python values with tensors inside: `state_to_tensors` lifts the tensors out
under readable names and keeps the rest as JSON in the metadata, with
markers that bring back exactly what JSON alone would lose (tuples, integer
dict keys). The RNG states become tensors of their own, so that a resumed run
draws the same numbers as an unbroken one.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from specc.errors import InputFileError

HINT = "specc reads only safetensors files it wrote (never pickle); train again, or point at another checkpoint"


def save_atomic(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write `tensors` to `path` so that a crash at any moment leaves the previous file whole."""
    path = Path(path)
    # A copy on the CPU: contiguous, and sharing no memory, which safetensors refuses.
    cpu = {name: t.detach().to("cpu", copy=True).contiguous() for name, t in tensors.items()}
    data = save(cpu, metadata)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    # The rename lives in the folder's entry; without this a power cut may undo it.
    if os.name == "posix":
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def load(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such checkpoint file", hint="check the path; `specc train` writes them")
    try:
        with safe_open(path, framework="pt") as f:
            names = f.keys()  # safe_open cannot be iterated itself
            return {name: f.get_tensor(name) for name in names}, f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise InputFileError(f"{path} is not a complete safetensors file ({e})", hint=HINT) from None


def epoch_of(path: Path) -> int | None:
    """The `specc.epoch` a weights file of a run records; None where the file is missing or damaged."""
    try:
        with safe_open(path, framework="pt") as f:
            return int((f.metadata() or {})["specc.epoch"])
    except (SafetensorError, OSError, KeyError, ValueError):
        return None


# --- nested states (optimiser, scheduler) -------------------------------------


def state_to_tensors(state: dict, prefix: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors named `prefix/...` and metadata `{prefix: JSON}` that hold `state` exactly."""
    tensors: dict[str, torch.Tensor] = {}
    return tensors, {prefix: json.dumps(_encode(state, prefix, tensors))}


def state_from_tensors(tensors: dict[str, torch.Tensor], meta: dict[str, str], prefix: str) -> dict:
    """The state that `state_to_tensors(state, prefix)` stored."""
    if prefix not in meta:
        raise InputFileError(f"the checkpoint has no {prefix} state", hint=HINT)
    try:
        return _decode(json.loads(meta[prefix]), tensors)
    except (ValueError, KeyError, TypeError) as e:
        raise InputFileError(f"the checkpoint's {prefix} state is damaged ({e!r})", hint=HINT) from None


def optimizer_state_to_tensors(state: dict) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    return state_to_tensors(state, "optimizer")


def optimizer_state_from_tensors(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> dict:
    return state_from_tensors(tensors, meta, "optimizer")


def scheduler_state_to_tensors(state: dict) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    return state_to_tensors(state, "scheduler")


def scheduler_state_from_tensors(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> dict:
    return state_from_tensors(tensors, meta, "scheduler")


def _encode(value, name: str, tensors: dict[str, torch.Tensor]):
    """JSON for `value`; every dict, tuple and tensor becomes a one-key marker object."""
    if isinstance(value, torch.Tensor):
        if name in tensors:
            raise ValueError(f"two entries of the state would both be stored as {name!r}")
        tensors[name] = value
        return {"tensor": name}
    if isinstance(value, dict):  # as pairs: JSON object keys would turn parameter ids into strings
        return {"dict": [[key, _encode(item, f"{name}/{key}", tensors)] for key, item in value.items()]}
    if isinstance(value, tuple | list):
        items = [_encode(item, f"{name}/{i}", tensors) for i, item in enumerate(value)]
        return {"tuple": items} if isinstance(value, tuple) else items
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot store {type(value).__name__} {name} in a checkpoint")


def _decode(value, tensors: dict[str, torch.Tensor]):
    if isinstance(value, list):
        return [_decode(item, tensors) for item in value]
    if not isinstance(value, dict):
        return value
    if "tensor" in value:
        return tensors[value["tensor"]]
    if "tuple" in value:
        return tuple(_decode(item, tensors) for item in value["tuple"])
    return {key: _decode(item, tensors) for key, item in value["dict"]}


# --- random number generators -----------------------------------------------


def rng_state_to_tensors() -> dict[str, torch.Tensor]:
    """The states of torch's (CPU and CUDA), Python's and NumPy's global generators."""
    version, mt, gauss = random.getstate()
    _, keys, pos, has_gauss, cached_gauss = np.random.get_state()
    tensors = {
        "rng/torch": torch.get_rng_state(),
        "rng/python": torch.tensor([version, *mt], dtype=torch.int64),
        # Python's cached Gaussian is None or a float: no entry or one.
        "rng/python_gauss": torch.tensor([] if gauss is None else [gauss], dtype=torch.float64),
        "rng/numpy": torch.tensor([*keys.tolist(), pos, has_gauss], dtype=torch.int64),
        "rng/numpy_gauss": torch.tensor([cached_gauss], dtype=torch.float64),
    }
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = state
    return tensors


def restore_rng_state(tensors: dict[str, torch.Tensor]) -> None:
    """Set the global generators to what `rng_state_to_tensors` saw."""
    if "rng/torch" not in tensors:
        raise InputFileError("the checkpoint has no random number generator state", hint=HINT)
    torch.set_rng_state(tensors["rng/torch"])
    python = tensors["rng/python"].tolist()
    gauss = tensors["rng/python_gauss"].tolist()
    random.setstate((python[0], tuple(python[1:]), gauss[0] if gauss else None))
    numpy = tensors["rng/numpy"].tolist()
    keys = np.array(numpy[:-2], dtype=np.uint32)
    np.random.set_state(("MT19937", keys, numpy[-2], numpy[-1], tensors["rng/numpy_gauss"].item()))
    for i in range(torch.cuda.device_count()):
        if f"rng/cuda/{i}" in tensors:
            torch.cuda.set_rng_state(tensors[f"rng/cuda/{i}"], i)
