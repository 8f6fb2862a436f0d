"""The spec text of an imported network, and its tensors under the names specc's torch module uses."""

from __future__ import annotations

import re

from ..errors import EXIT_FAILURE, SpeccError
from ..layers import KINDS
from .blocks import Call, find_blocks
from .tree import Layer, Statement, layers_in_order

_POSITIONAL = {  # the field a kind writes without its name: `fc 10`, `shuffle 2`
    "fc": "K",
    "maxout": "K",
    "dropout": "p",
    "leakyrelu": "slope",
    "elu": "alpha",
    "pool": "mode",
    "shuffle": "groups",
    "layerscale": "init",
}
_WORDS = {"global", "ceil"}  # bool fields written as a bare word when true
# What specc names unnamed layers after (conv3, bn2): a graph name like these could collide with one.
_AUTO_NAMES = {kind.name for kind in KINDS.values()} | {kind.short for kind in KINDS.values()}


def spec_text(
    name: str, input_shape: tuple[int, ...], body: list[Statement], origin: str, named: bool = True, blocks: bool = True, classes=None
) -> str:
    """The spec; with `blocks`, repeated units written once as a block and called (see blocks.py), named
    after the source's `classes` of modules where it has them (see units.module_classes)."""
    lines = [f"# Imported by `specc import` from {origin}.", f"network {name}", f"input {'x'.join(map(str, input_shape))}", ""]
    definitions, body = find_blocks(body, named, classes) if blocks else ([], body)
    for block in definitions:
        params = [*(p for p in block.params if p not in block.defaults), *(f"{p}={v}" for p, v in block.defaults.items())]
        lines += [f"block {block.name}({', '.join(params)}) {{", *_statements(block.body, 1, named), "}"]
    lines += [""] * bool(definitions) + _statements(body, 0, named)  # blocks back to back, as the zoo writes them
    return "\n".join(lines) + "\n"


def _statements(body: list[Statement], depth: int, named: bool) -> list[str]:
    pad, out = "    " * depth, []
    for st in body:
        if isinstance(st, Layer):
            out.append(pad + _layer(st, named))
        elif isinstance(st, Call):
            out.append(pad + _call(st, named))
        elif st.kind == "seq":
            out += [
                pad + ("" if not (named and st.name) else f"{st.name}: ") + "seq {",
                *_statements(st.branches[0], depth + 1, named),
                pad + "}",
            ]
        elif st.kind == "concat":
            out.append(pad + " ".join(filter(None, ("concat", st.words, "{"))))
            for branch in st.branches:
                if len(branch) == 1:
                    out += _statements(branch, depth + 1, named)
                else:
                    out += ["    " * (depth + 1) + "seq {", *_statements(branch, depth + 2, named), "    " * (depth + 1) + "}"]
            out.append(pad + "}")
        else:
            out += [pad + " ".join(filter(None, (st.kind, st.words, "{"))), *_statements(st.branches[0], depth + 1, named), pad + "}"]
    return out


def _layer(layer: Layer, named: bool) -> str:
    words = [layer.kind]
    for field, value in layer.args.items():
        if field == _POSITIONAL.get(layer.kind):
            words.append(_value(value))
        elif field in _WORDS:
            words.append(field)
        else:
            words.append(f"{field}={_value(value)}")
    label = f"{layer.name}: " if named and layer.name else ""
    return label + " ".join(words) + (f" x {layer.repeat}" if layer.repeat != 1 else "")


def _call(call: Call, named: bool) -> str:
    args = ", ".join([*map(str, call.args), *(f"{k}={v}" for k, v in call.kwargs.items())])
    label = f"{call.name}: " if named and call.name else ""
    return f"{label}{call.block}({args})" + (f" x{call.repeat}" if call.repeat > 1 else "")


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = f"{value:g}" if "e" not in f"{value:g}" else repr(value)
        return re.sub(r"e\+?(-?)0*(?=\d)", r"e\1", text)  # 1e-6 as a person writes it, not 1e-06
    return str(value)


def legal_names(body: list[Statement]) -> None:
    """Layer names from the graph, made legal (letters, digits, _) and unique; kind names are left unnamed."""
    taken: set[str] = set()
    for layer in layers_in_order(body):
        if layer.name is None:
            continue
        name = re.sub(r"\W+", "_", layer.name).strip("_")
        name = f"l{name}" if name[:1].isdigit() else name
        if not name or is_auto_name(name):
            layer.name = None  # `conv3` would collide with the names specc gives unnamed layers
            continue
        unique, n = name, 1
        while unique in taken:
            n += 1
            unique = f"{name}_{n}"
        taken.add(unique)
        layer.name = unique


def is_auto_name(name: str) -> bool:
    return name.rstrip("0123456789") in _AUTO_NAMES


def network_name(stem: str) -> str:
    name = re.sub(r"\W+", "_", stem).strip("_") or "imported"
    return f"net_{name}" if name[0].isdigit() else name


def named_tensors(net, body: list[Statement]) -> dict:
    """The imported tensors under the names of `net`'s torch module, checked against its state dict."""
    import numpy as np
    import torch

    ours = list(layers_in_order(body))
    theirs = net.network.layers()
    if [layer.kind for layer in ours] != [KINDS[layer.kind.name].name for layer in theirs]:
        raise SpeccError("the imported spec's layers do not line up with the graph's: a bug in specc import", exit_code=EXIT_FAILURE)
    tensors = {}
    for mine, built in zip(ours, theirs, strict=True):
        for role, array in mine.tensors.items():
            tensors[f"{built.name}.{role}"] = torch.from_numpy(np.array(array, dtype=np.float32))
        if mine.kind == "batchnorm":
            tensors[f"{built.name}.num_batches_tracked"] = torch.tensor(0)
    with torch.device("meta"):  # names and shapes only: VGG's 138M parameters are not initialised for them
        expected = net.to_torch().state_dict()
    wrong = sorted(set(expected) ^ set(tensors)) + [n for n in expected if n in tensors and expected[n].shape != tensors[n].shape]
    if wrong:
        raise SpeccError(
            f"the imported weights do not fit the imported spec ({', '.join(wrong[:4])}): a bug in specc import", exit_code=EXIT_FAILURE
        )
    return tensors
