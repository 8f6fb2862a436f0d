"""Repeated structures in an imported network, written as blocks with parameters, calls and repeats.

A unit is a top-level group with the activations that follow it (a residual and its relu). Units
alike up to their whole-number arguments become one `block`: an argument that varies is a parameter
(`K`), one that is a multiple of another is written so (`4*K`), one that stays the same is written
as is. A residual's shortcut becomes `auto` (projects only where shapes change), so the units with a
projection and those without are one block. Consecutive equal calls become a repeat, and the calls
of one stage of the source (`layer2_0_...`, `layer2_1_...`) a labelled `seq`. The caller checks the
result against the block-free spec, row by row, and keeps the block-free one where they differ.
"""

from __future__ import annotations

import copy
import os
import re
from collections import Counter
from dataclasses import dataclass, field

from ..layers import KINDS
from .tree import Group, Layer, Statement, layers_in_order

_ACTIVATIONS = {"relu", "relu6", "silu", "gelu", "hardswish", "sigmoid", "tanh", "elu", "leakyrelu", "mish"}
_SHORT = {"groups": "G", "dilation": "D"}  # parameters named as the zoo's blocks name them
_NAMES = {"residual": "res", "concat": "cat", "gate": "gated"}
_SHORTEST_RUN = 3  # layers a named module must have to count as a unit: a conv, its batchnorm and activation


@dataclass
class Call:
    """`label: block(args) xN`: positional arguments, then keyword ones."""

    block: str
    args: list[int]
    kwargs: dict[str, int]
    repeat: int = 1
    name: str | None = None
    stage: str | None = None  # the source's stage name its layers share (`layer2`)
    names: list[str] = field(default_factory=list)  # the source's names of the layers it stands for


@dataclass
class Block:
    name: str
    params: list[str]
    defaults: dict[str, int]
    body: list[Statement]
    calls: list[Call] = field(default_factory=list)


def find_blocks(body: list[Statement], named: bool) -> tuple[list[Block], list]:
    """The blocks, and the top-level statements with units replaced by calls; `body` is left as it is."""
    units = _units(body)
    clusters: dict[tuple, list[int]] = {}
    for i, (start, end) in enumerate(units):
        clusters.setdefault(_skeleton(body[start:end]), []).append(i)
    blocks, calls = [], {}
    taken = {layer.name for layer in layers_in_order(body) if layer.name}
    for members in clusters.values():
        if len(members) < 2:
            continue
        statements = [body[slice(*units[i])] for i in members]
        block = _block(_block_name(statements[0], taken), statements, named)
        blocks.append(block)
        calls.update(zip((units[i][0] for i in members), block.calls, strict=True))
    out, i = [], 0
    ends = dict(units)
    while i < len(body):
        if i in calls:
            out.append(calls[i])
            i = ends[i]
        else:
            out.append(copy.deepcopy(body[i]))
            i += 1
    out = _repeats(out)
    return blocks, _stages(out, taken, [layer.name for layer in layers_in_order(body) if layer.name]) if named else out


def _units(body: list[Statement]) -> list[tuple[int, int]]:
    """Where units start and end: each top-level group with its activations, and each run of layers
    the source named as one module (`features_4_conv1`, `features_4_bn1`, ...)."""
    units, covered = [], set()
    for i, st in enumerate(body):
        if isinstance(st, Group):
            end = i + 1
            while end < len(body) and isinstance(body[end], Layer) and body[end].kind in _ACTIVATIONS and not body[end].tensors:
                end += 1
            units.append((i, end))
            covered.update(range(i, end))
    i = 0
    while i < len(body):
        module = _module(body[i]) if i not in covered else None
        end, last = i + 1, i + 1
        while module and end < len(body) and end not in covered and isinstance(body[end], Layer) and _module(body[end]) in (module, None):
            end += 1
            last = end if _module(body[end - 1]) == module else last
        if module and last - i >= _SHORTEST_RUN:
            units.append((i, last))
        i = last
    return sorted(units)


def _module(st: Statement) -> str | None:
    """`features_4_` for a layer named `features_4_body1_conv1`: the numbered module it belongs to."""
    found = re.match(r"^(.*?_\d+_)", st.name) if isinstance(st, Layer) and st.name else None
    return found.group(1) if found else None


def _varies(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _skeleton(statements: list[Statement]) -> tuple:
    """What units of one block share: kinds, groups and every argument but whole numbers."""
    out = []
    for st in statements:
        if isinstance(st, Layer):
            out.append((st.kind, tuple((f, v) for f, v in st.args.items() if not _varies(v))))
        else:
            out.append((st.kind, _words(st), tuple(_skeleton(b) for b in st.branches)))
    return tuple(out)


def _words(group: Group) -> str:
    if group.kind != "residual":
        return group.words
    return "shortcut=auto shortcut_first" if group.shortcut_first else "shortcut=auto"


def _slots(statements: list[Statement]) -> list[Layer]:
    """The layers of a unit, in the order _skeleton meets them (shortcuts are left to `auto`)."""
    out = []
    for st in statements:
        if isinstance(st, Layer):
            out.append(st)
        else:
            for branch in st.branches:
                out += _slots(branch)
    return out


def _block(name: str, units: list[list[Statement]], named: bool) -> Block:
    """The block whose calls give `units`: whole-number arguments that differ become parameters."""
    body = copy.deepcopy(units[0])
    layers = [_slots(unit) for unit in units]
    names = [[layer.name for layer in layers_in_order(unit) if layer.name] for unit in units]
    prefixes = [_prefix(unit) for unit in names]
    params: dict[tuple, str] = {}  # the column of values a parameter takes -> its name
    usual: dict[str, int] = {}  # a parameter -> the default of the field it was made for
    for position, mine in enumerate(_slots(body)):
        defaults = KINDS[mine.kind].defaults()
        order = [f.name for f in KINDS[mine.kind].fields]
        fields = dict.fromkeys(f for unit in layers for f, v in unit[position].args.items() if _varies(v))
        args = {f: v for f, v in mine.args.items() if not _varies(v)}
        for f in fields:
            column = tuple(unit[position].args.get(f, defaults.get(f)) for unit in layers)
            if len(set(column)) == 1:
                if column[0] != defaults.get(f):
                    args[f] = column[0]
                continue
            args[f] = _expression(column, f, params)
            usual.setdefault(args[f], defaults.get(f))
        mine.args = dict(sorted(args.items(), key=lambda item: order.index(item[0])))
        mine.name = _local_name([unit[position].name for unit in layers], prefixes) if named else None
        mine.tensors = {}
    for group in _groups(body):
        group.words, group.shortcut = _words(group) if group.kind == "residual" else group.words, []
    columns = {p: c for c, p in params.items()}
    common = {p: Counter(c).most_common(1)[0][0] for p, c in columns.items()}
    defaulted = {p: v for p, v in common.items() if v == usual.get(p)}  # `S=1`: written only where a call differs
    order = [p for p in columns if p not in defaulted] + [p for p in columns if p in defaulted]
    block = Block(name, order, defaulted, body)
    for i in range(len(units)):
        args = [columns[p][i] for p in order if p not in defaulted]
        kwargs = {p: columns[p][i] for p in order if p in defaulted and columns[p][i] != defaulted[p]}
        block.calls.append(Call(name, args, kwargs, stage=_stage(prefixes[i]), names=names[i]))
    return block


def _expression(column: tuple, field_name: str, params: dict[tuple, str]) -> str:
    if column in params:
        return params[column]
    for known, param in params.items():
        ratio = {v // k if k and v % k == 0 else None for k, v in zip(known, column, strict=True)}
        if len(ratio) == 1 and None not in ratio:
            return f"{ratio.pop()}*{param}"
    taken, n, name = set(params.values()), 1, _SHORT.get(field_name, field_name)
    while name in taken:
        n += 1
        name = f"{_SHORT.get(field_name, field_name)}{n}"
    params[column] = name
    return name


def _groups(statements: list[Statement]):
    for st in statements:
        if isinstance(st, Group):
            yield st
            for branch in st.branches:
                yield from _groups(branch)


def _prefix(names: list[str]) -> str:
    """What a unit's layer names share, up to an `_` (`layer2_0_` in `layer2_0_conv1`, `layer2_0_bn1`)."""
    common = os.path.commonprefix(names) if len(names) > 1 else ""
    return common[: common.rfind("_") + 1]


def _local_name(names: list[str | None], prefixes: list[str]) -> str | None:
    """`conv1` where every unit's layer is `<its prefix>conv1`; kind names are left to specc (they could clash)."""
    from .writer import is_auto_name

    if None in names or not all(prefixes):
        return None
    tails = {name[len(prefix) :] for name, prefix in zip(names, prefixes, strict=True)}
    tail = tails.pop() if len(tails) == 1 else ""
    return tail if re.fullmatch(r"[A-Za-z_]\w*", tail) and not is_auto_name(tail) else None


def _stage(prefix: str) -> str | None:
    """`layer2` where a unit's layers are all named `layer2_<n>_...`."""
    found = re.match(r"^(.*?)_\d+_", prefix)
    return found.group(1) if found else None


def _block_name(unit: list[Statement], taken: set[str]) -> str:
    base = _NAMES.get(unit[0].kind, "part")
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}{n}"
    taken.add(name)
    return name


def _repeats(statements: list) -> list:
    out: list = []
    for st in statements:
        last = out[-1] if out else None
        if (
            isinstance(st, Call)
            and isinstance(last, Call)
            and (last.block, last.args, last.kwargs, last.stage) == (st.block, st.args, st.kwargs, st.stage)
        ):
            last.repeat += 1
            last.names += st.names
        else:
            out.append(st)
    return out


def _stages(statements: list, taken: set[str], everyone: list[str]) -> list:
    """Calls of one source stage under its name: one call labelled, several in a labelled `seq`."""
    out: list = []
    i = 0
    while i < len(statements):
        st = statements[i]
        stage = st.stage if isinstance(st, Call) else None
        end = i + 1
        while stage and end < len(statements) and isinstance(statements[end], Call) and statements[end].stage == stage:
            end += 1
        run = statements[i:end]
        covered = stage and sum(len(c.names) for c in run) == sum(name.startswith(f"{stage}_") for name in everyone)
        if stage and covered and stage not in taken and sum(c.repeat for c in run) > 1:
            taken.add(stage)
            if len(run) == 1:
                st.name = stage
            else:
                run = [Group("seq", [run], name=stage)]
        out += run
        i = end
    return out
