"""Repeated structures in an imported network, written as blocks with parameters, calls and repeats.

Blocks are found bottom-up over the source's module tree (units.py): first the runs of statements of
the lowest modules (a conv, its batchnorm and activation), then those of the modules made of them,
where calls of the blocks already found count as statements, at any depth of groups (an inverted
residual's body inside its residual). Runs alike up to their whole-number arguments become one
`block`: an argument that varies is a parameter (`K`), one that is a multiple of another is written
so (`4*K`), one that stays the same is written as is. A residual's shortcut becomes `auto` (projects
only where shapes change), so the units with a projection and those without are one block; units
that differ in a last activation are one block too (`hardswish x A`). A block is made only where it
shortens the spec. Consecutive equal calls become a repeat, and the calls of one
stage of the source (`layer2.0`, `layer2.1`) a labelled `seq`. The caller checks the result against
the block-free spec, row by row, and keeps the block-free one where they differ.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise

from ..layers import KINDS
from .tree import Group, Layer, Statement, layers_in_order
from .units import Module, Unit, class_name, find_units, free_name, modules_by_height, path, sources, under

_ACTIVATIONS = {"relu", "relu6", "silu", "gelu", "hardswish", "sigmoid", "tanh", "elu", "leakyrelu", "mish"}
_SHORT = {"groups": "G", "dilation": "D"}  # parameters named as the zoo's blocks name them
_NAMES = {"residual": "res", "concat": "cat", "gate": "gated"}


@dataclass
class Call:
    """`label: block(args) xN`: positional arguments, then keyword ones, from `values`."""

    block: str
    values: dict[str, int | str]  # every parameter's value: a number, or in a block's body an expression
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    repeat: int = 1
    name: str | None = None
    module: Module = ()  # the source module its unit was (`layer2.0`)
    sources: list = field(default_factory=list)  # the source modules of everything it computes


@dataclass
class Block:
    name: str
    params: list[str]
    defaults: dict[str, int]
    body: list[Statement]
    calls: list[Call] = field(default_factory=list)

    def call(self, values: dict, **more) -> Call:
        args = [values[p] for p in self.params if p not in self.defaults]
        kwargs = {p: values[p] for p in self.params if p in self.defaults and values[p] != self.defaults[p]}
        return Call(self.name, dict(values), args, kwargs, **more)


def find_blocks(body: list[Statement], named: bool, classes: dict[Module, str] | None = None) -> tuple[list[Block], list]:
    """The blocks, and the statements with units replaced by calls; `body` is left as it is.
    `classes`: the source's class of each module, to name blocks after (see units.module_classes)."""
    body = copy.deepcopy(body)
    everyone = [s for st in body for s in sources(st)]
    taken = {layer.name for layer in layers_in_order(body) if layer.name}
    blocks: dict[str, Block] = {}
    for modules in modules_by_height(body):
        _gather(_activations_outside(find_units(body, modules)), blocks, taken, named, classes or {})
    _gather(_runs_alike(body), blocks, taken, named, {})  # a flat Sequential's repeated layers (VGG's conv, batchnorm, relu)
    for block in blocks.values():
        block.body = _repeats(block.body)
    body = _repeats(body)
    return list(blocks.values()), _stages(body, taken, everyone) if named else body


def _gather(units: list[Unit], blocks: dict[str, Block], taken: set[str], named: bool, classes: dict[Module, str]) -> None:
    """Units alike become one block (where it pays) and calls of it in their place."""
    clusters: dict[tuple, list[Unit]] = {}
    for unit in units:
        clusters.setdefault(_skeleton(unit.alike), []).append(unit)
    calls = {}
    for members in clusters.values():
        if len(members) < 2 or not _shortens(members):
            continue
        block = _block(_block_name(members, taken, classes), members, named, blocks)
        blocks[block.name] = block
        calls.update(zip(map(id, members), block.calls, strict=True))
    for unit in sorted((u for u in units if id(u) in calls), key=lambda u: -u.start):  # later ones first: earlier starts stay put
        unit.statements[unit.start : unit.end] = [calls[id(unit)]]


def _runs_alike(statements: list) -> list[Unit]:
    """The windows of a few layers or groups that recur (apart) and save the most lines: VGG's conv,
    batchnorm and relu, or DenseNet's concat of a layer's input and its output, which no one module holds."""
    best: list[Unit] = []
    for n in range(1, 6):
        starts: dict[tuple, list[int]] = {}
        for i in range(len(statements) - n + 1):
            window = statements[i : i + n]
            if all(isinstance(st, Layer | Group) for st in window) and (n > 1 or isinstance(window[0], Group)):
                found = starts.setdefault(_skeleton(statements[i : i + n]), [])
                if not found or found[-1] + n <= i:
                    found.append(i)
        for found in starts.values():
            units = [Unit((), statements, i, i + n) for i in found]
            if _saving(units) > max(1, _saving(best)):
                best = units
    return best


def _saving(units: list[Unit]) -> int:
    """Lines a block of `units` saves: its units' lines, less a line for each call (equal neighbours are
    one repeat), its body and its first and last line."""
    if not units:
        return 0
    calls = 1 + sum(
        not (before.statements is unit.statements and before.end == unit.start and _same(before.run, unit.run))
        for before, unit in pairwise(units)
    )
    return sum(_lines(unit.run) for unit in units) - calls - max(_lines(unit.run) for unit in units) - 2


def _same(one: list, other: list) -> bool:
    """Equal up to names and tensors: two calls of one block with the same arguments."""
    return _skeleton(one) == _skeleton(other) and _arguments(one) == _arguments(other)


def _arguments(statements: list) -> list:
    return [(st.args, st.repeat) if isinstance(st, Layer) else st.values for st in _slots(statements)]


def _activations_outside(units: list[Unit]) -> list[Unit]:
    """Units alike but for their last activation are one block. It has the activation most of them end
    with `x A` times (A=0 for those without, as the zoo's mobilenet_v3_small writes `hardswish x H`);
    a unit that ends with another kind leaves it out, to follow its call."""
    cores: dict[tuple, list[Unit]] = {}
    for unit in units:
        cores.setdefault(_skeleton(_core(unit.run)), []).append(unit)
    for members in cores.values():
        if len({_skeleton(unit.run) for unit in members}) == 1:
            continue
        tails = Counter(unit.run[-1].kind for unit in members if len(_core(unit.run)) < len(unit.run))
        usual = tails.most_common(1)[0][0]
        for unit in members:
            if len(_core(unit.run)) < len(unit.run) and unit.run[-1].kind != usual:
                unit.end -= 1
            unit.lacks = None if unit.run[-1].kind == usual and len(_core(unit.run)) < len(unit.run) else usual
    return units


def _core(run: list) -> list:
    last = run[-1]
    if len(run) > 2 and isinstance(last, Layer) and last.kind in _ACTIVATIONS and not last.tensors:
        return run[:-1]
    return run


def _lines(statements: list) -> int:
    """How many lines the statements take written out, equal calls in a row as one repeat."""
    count = 0
    for i, st in enumerate(statements):
        if isinstance(st, Group):
            wrapped = [b for b in st.branches if st.kind == "concat" and len(b) > 1]
            count += 2 + sum(_lines(b) for b in st.branches) + 2 * len(wrapped)
        elif not (
            isinstance(st, Call)
            and i
            and isinstance(statements[i - 1], Call)
            and (statements[i - 1].block, statements[i - 1].values) == (st.block, st.values)
        ):
            count += 1
    return count


def _shortens(members: list[Unit]) -> bool:
    """A block costs its body and its first and last line; each call saves its unit's lines but one."""
    return _saving(members) >= 0


def _varies(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _skeleton(statements: list) -> tuple:
    """What units of one block share: kinds, groups, calls and every argument but whole numbers."""
    out = []
    for st in statements:
        if isinstance(st, Layer):
            required = tuple(f for f, v in st.args.items() if _varies(v) and KINDS[st.kind].defaults().get(f) is None)
            out.append((st.kind, tuple((f, v) for f, v in st.args.items() if not _varies(v)), required))
        elif isinstance(st, Call):
            out.append(("call", st.block, st.repeat, tuple((p, v) for p, v in st.values.items() if not _varies(v))))
        else:
            out.append((st.kind, _words(st), tuple(_skeleton(b) for b in st.branches)))
    return tuple(out)


def _words(group: Group) -> str:
    if group.kind != "residual":
        return group.words
    return "shortcut=auto shortcut_first" if group.shortcut_first else "shortcut=auto"


def _slots(statements: list) -> list:
    """The layers and calls of a unit, in the order _skeleton meets them (shortcuts are left to `auto`)."""
    out = []
    for st in statements:
        if isinstance(st, Group):
            for branch in st.branches:
                out += _slots(branch)
        else:
            out.append(st)
    return out


def _fields(slot, blocks: dict[str, Block]) -> tuple[dict, dict, list[str]]:
    """A slot's values, their defaults and their order: a layer's fields, or a call's parameters."""
    if isinstance(slot, Layer):
        kind = KINDS[slot.kind]
        return slot.args, kind.defaults(), [f.name for f in kind.fields]
    block = blocks[slot.block]
    return slot.values, block.defaults, block.params


def _block(name: str, units: list[Unit], named: bool, blocks: dict[str, Block]) -> Block:
    """The block whose calls give `units`: whole-number arguments that differ become parameters."""
    body = copy.deepcopy(next((unit for unit in units if not unit.lacks), units[0]).run)
    slots = [_slots(unit.alike) for unit in units]
    params: dict[tuple, str] = {}  # the column of values a parameter takes -> its name
    usual: dict[str, int] = {}  # a parameter -> the default of the field it was made for
    for position, mine in enumerate(_slots(body)):
        values, defaults, order = _fields(mine, blocks)
        each = [_fields(unit[position], blocks)[0] for unit in slots]  # this slot's values in every unit
        varying = dict.fromkeys(f for unit_values in each for f, v in unit_values.items() if _varies(v))
        args = {f: v for f, v in values.items() if not _varies(v)}
        columns = {f: tuple(unit_values.get(f, defaults.get(f)) for unit_values in each) for f in varying}
        for f, column in columns.items():
            if len(set(column)) == 1:
                if column[0] != defaults.get(f):
                    args[f] = column[0]
            elif f == "P" and isinstance(mine, Layer) and _same_padding(columns.get("F"), column) and args.get("F") in params.values():
                args[f] = f"({args['F']}-1)/2"  # `same` padding, as the zoo writes it
            else:
                args[f] = _expression(column, f, params)
                usual.setdefault(args[f], defaults.get(f))
        if isinstance(mine, Layer):
            counts = tuple(unit[position].repeat for unit in slots)
            if len(set(counts)) > 1:
                mine.repeat = _expression(counts, "A", params)
                usual.setdefault(mine.repeat, 1)
            mine.args = dict(sorted(args.items(), key=lambda item: order.index(item[0])))
            mine.name = _local_name([unit[position] for unit in slots], [unit.module for unit in units]) if named else None
            mine.tensors = {}
        else:
            inner = blocks[mine.block]
            replaced = inner.call({p: args.get(p, inner.defaults.get(p)) for p in inner.params})
            mine.values, mine.args, mine.kwargs, mine.name = replaced.values, replaced.args, replaced.kwargs, None
    for group in _groups(body):
        group.words, group.shortcut = _words(group) if group.kind == "residual" else group.words, []
    columns = {p: c for c, p in params.items()}
    common = {p: Counter(c).most_common(1)[0][0] for p, c in columns.items()}
    defaulted = {p: v for p, v in common.items() if v == usual.get(p)}  # `S=1`: written only where a call differs
    order = [p for p in columns if p not in defaulted] + [p for p in columns if p in defaulted]
    block = Block(name, order, defaulted, body)
    for i, unit in enumerate(units):
        everything = [s for st in unit.run for s in sources(st)]
        block.calls.append(block.call({p: columns[p][i] for p in order}, module=unit.module, sources=everything))
    return block


def _expression(column: tuple, field_name: str, params: dict[tuple, str]) -> str:
    """A new parameter for `column`, or one already made for the same field or a multiple of it (`4*K`)."""
    if column in params:
        return params[column]
    for known, param in params.items():
        ratio = {v // k if k and v % k == 0 else None for k, v in zip(known, column, strict=True)}
        if len(ratio) == 1 and None not in ratio and _short(field_name) == param.rstrip("0123456789"):
            return f"{ratio.pop()}*{param}"
    taken, n, name = set(params.values()), 1, _short(field_name)
    while name in taken:
        n += 1
        name = f"{_short(field_name)}{n}"
    params[column] = name
    return name


def _same_padding(sizes: tuple | None, padding: tuple) -> bool:
    return sizes is not None and all(isinstance(f, int) and f % 2 == 1 and p == (f - 1) // 2 for f, p in zip(sizes, padding, strict=True))


def _short(field_name: str) -> str:
    """A parameter's name for a field (`groups` -> `G`), or for an inner block's parameter (`K2` -> `K`)."""
    return _SHORT.get(field_name, field_name).rstrip("0123456789") or field_name


def _groups(statements: list[Statement]):
    for st in statements:
        if isinstance(st, Group):
            yield st
            for branch in st.branches:
                yield from _groups(branch)


def _local_name(layers: list[Layer], modules: list[Module]) -> str | None:
    """`conv1` where every unit's layer is `<its module>.conv1`; kind names are left to specc (they could clash)."""
    from .writer import is_auto_name

    if any(layer.name is None or not under(layer.source, module) for layer, module in zip(layers, modules, strict=True)):
        return None
    tails = {"_".join(path(layer.source)[len(module) :]) for layer, module in zip(layers, modules, strict=True)}
    tail = tails.pop() if len(tails) == 1 else ""
    return tail if re.fullmatch(r"[A-Za-z_]\w*", tail) and not is_auto_name(tail) else None


def _block_name(members: list[Unit], taken: set[str], classes: dict[Module, str]) -> str:
    """After the source's class where all units share one (`SqueezeExcitation` -> `se`), else after the group."""
    unit = members[0].run
    base = _NAMES.get(unit[0].kind, "part") if isinstance(unit[0], Group) else "part"
    named = {class_name(classes, member.module) for member in members}
    if len(named) == 1 and None not in named and (named.pop() not in taken or base == "part"):
        base = class_name(classes, members[0].module)  # a residual around a block of that class stays `res`
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}{n}"
    taken.add(name)
    return name


def _repeats(statements: list) -> list:
    """Consecutive equal calls as one call `xN`, in every body and branch."""
    out: list = []
    for st in statements:
        last = out[-1] if out else None
        if isinstance(st, Group):
            st.branches = [_repeats(branch) for branch in st.branches]
        if isinstance(st, Call) and isinstance(last, Call) and (last.block, last.values, _stage(last)) == (st.block, st.values, _stage(st)):
            last.repeat += st.repeat
            last.sources += st.sources
        else:
            out.append(st)
    return out


def _stage(call: Call) -> Module:
    """`layer2` for a call of `layer2.0`: the numbered module's parent."""
    return call.module[:-1] if call.module and call.module[-1].isdigit() else ()


def _stages(statements: list, taken: set[str], everyone: list[str | None]) -> list:
    """Calls of one source stage under its name: one call labelled, several in a labelled `seq`."""
    out: list = []
    i = 0
    while i < len(statements):
        st = statements[i]
        stage = _stage(st) if isinstance(st, Call) else ()
        end = i + 1
        while (
            stage
            and end < len(statements)
            and isinstance(statements[end], Call)
            and _stage(statements[end]) == stage
            and statements[end].block == st.block
        ):
            end += 1
        run = statements[i:end]
        label = "_".join(stage)
        covered = stage and sum(len(c.sources) for c in run) == sum(under(s, stage) for s in everyone)
        if stage and covered and re.fullmatch(r"[A-Za-z_]\w*", label) and label not in taken and sum(c.repeat for c in run) > 1:
            taken.add(label)
            if len(run) == 1:
                st.name = label
            else:
                run = [Group("seq", [run], name=label)]
        elif isinstance(st, Call) and st.repeat == 1 and len(st.module) == 1 and free_name(st.module[0], taken):
            st.name = st.module[0]  # a module of its own at the top (`inception3a`), as the source names it
            taken.add(st.name)
        out += run
        i = end
    return out
