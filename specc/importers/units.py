"""Where the source's modules stand in the imported tree: the run of statements one module became.

Every imported layer knows the module it came from (`features.4.block.0.0`), and every group the
module of the node that joins its branches (`features.5` for an inverted residual's add). Those paths
form the source's module tree. blocks.py walks it bottom-up, lowest modules first (a conv with its
batchnorm and activation before the inverted residual made of them), as a person writing the spec
by hand would: here is where one module's statements are, at whatever depth of groups they sit.
The classes the exporter recorded for the modules name the blocks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .tree import Group, Layer, Statement, layers_in_order

Module = tuple[str, ...]  # `features.4.block` as ("features", "4", "block")


@dataclass
class Unit:
    """Statements `start:end` of `statements` (a body or a branch) are what `module` became."""

    module: Module
    statements: list[Statement]
    start: int
    end: int
    lacks: str | None = None  # the activation that others like it end with, and it does not (blocks.py)

    @property
    def run(self) -> list[Statement]:
        return self.statements[self.start : self.end]

    @property
    def alike(self) -> list[Statement]:
        """The run as its block sees it: a lacking activation there, zero times (`silu x A`, A=0)."""
        return self.run + ([Layer(self.lacks, repeat=0)] if self.lacks else [])


def path(source: str | None) -> Module:
    """`features.4.block.0` or PyTorch's own `/features/features.4/...` scope, as a module path."""
    return tuple(part for part in re.split(r"[./]+", source or "") if part)


def sources(st, join: bool = True) -> list[str | None]:
    """The source modules of everything a statement computes; a call knows those of its unit. Without
    `join`, not a group's own: DenseNet's concat of layer 2's output is computed in layer 3's module."""
    if isinstance(st, Layer):
        return [st.source]
    if isinstance(st, Group):
        inside = [s for branch in st.branches for item in branch for s in sources(item)]
        own = [st.source] if st.source and join else []  # a join outside every module (specc's own residual adds) is no one's
        return [*own, *inside, *(s for layer in st.shortcut for s in sources(layer))]
    return list(st.sources)


def modules_by_height(body: list[Statement]) -> list[list[Module]]:
    """The source's modules that became a run of statements, in rounds: those that hold no other such
    module first, then those that hold only modules of earlier rounds. A module that did not become
    a run of its own (a shortcut's projection, left to `auto`) does not count as a level."""
    modules = dict.fromkeys(path(layer.source)[:i] for layer in layers_in_order(body) for i in range(1, len(path(layer.source))))
    height: dict[Module, int] = {}
    for module in sorted((m for m in modules if find_unit(body, m)), key=len, reverse=True):
        inside = [h for other, h in height.items() if other[: len(module)] == module]
        height[module] = 1 + max(inside, default=0)
    rounds: dict[int, list[Module]] = {}
    for module, h in height.items():
        rounds.setdefault(h, []).append(module)
    return [rounds[h] for h in sorted(rounds)]


def under(source: str | None, module: Module) -> bool:
    return source is not None and path(source)[: len(module)] == module


def find_unit(statements: list[Statement], module: Module) -> Unit | None:
    """The run of statements that is all of `module` and nothing else, as deep in the groups as it
    sits: an inverted residual's body inside the residual its parent module adds; None where the
    module's statements are mixed with others'."""
    touching = [i for i, st in enumerate(statements) if any(under(s, module) for s in sources(st, join=False))]
    if not touching:
        return None
    first = statements[touching[0]]
    if len(touching) == 1 and isinstance(first, Group) and not under(first.source, module):
        inside = [b for b in first.branches if any(under(s, module) for st in b for s in sources(st))]
        outside = any(under(s, module) for layer in first.shortcut for s in sources(layer))
        return find_unit(inside[0], module) if len(inside) == 1 and not outside else None
    start, end = touching[0], touching[-1] + 1
    if not all(under(s, module) for st in statements[start:end] for s in sources(st)):
        return None
    if end - start == 1 and not isinstance(first, Group):
        return None  # one layer or one call: nothing to gather
    return Unit(module, statements, start, end)


def find_units(body: list[Statement], modules: list[Module]) -> list[Unit]:
    return [unit for unit in (find_unit(body, module) for module in modules) if unit is not None]


def module_classes(nodes) -> dict[Module, str]:
    """Each source module's class, where the exporter recorded it in a node's `namespace`
    ('...: MobileNetV3/features.0: torchvision.ops.misc.Conv2dNormActivation/...')."""
    classes: dict[Module, str] = {}
    for node in nodes:
        namespace = next((p.value for p in node.metadata_props if p.key == "namespace"), "")
        for part in namespace.split("/"):
            module, _, cls = part.partition(": ")
            if module.strip() and cls:
                classes[path(module.strip())] = cls.rsplit(".", 1)[-1]
    return classes


_CONTAINERS = {"Sequential", "ModuleList", "ModuleDict", "Module"}


def class_name(classes: dict[Module, str], module: Module) -> str | None:
    """A block's name after the module's class: `basic_conv2d` for BasicConv2d, snake_case; the initials past 12
    letters (`ir` for InvertedResidual, `se` for SqueezeExcitation); a trailing Block or Layer left out.
    A Sequential that is all its parent holds is named after the parent (an inverted residual's `block`)."""
    cls = classes.get(module)
    parent = module[:-1]
    children = {other[: len(module)] for other in classes if other[: len(parent)] == parent and len(other) > len(parent)}
    if cls in _CONTAINERS and parent and children == {module}:
        cls = classes.get(parent)
    if not cls or cls in _CONTAINERS:
        return None
    words = [w.lower() for w in re.findall(r"[A-Z]+(?![a-z])\d*[a-z]*|[A-Z]?[a-z]+\d*[a-z]*", cls)]
    words = words[:-1] if len(words) > 1 and words[-1] in ("block", "layer", "module", "unit") else words
    name = "_".join(words)
    name = "".join(w[0] for w in words if w[0].isalpha()) if len(name) > 12 else name
    return name if re.fullmatch(r"[a-z]\w*", name) and not taken_word(name) else None


def free_name(name: str, taken: set[str]) -> bool:
    return bool(re.fullmatch(r"[A-Za-z_]\w*", name)) and name not in taken and not taken_word(name)


def taken_word(name: str) -> bool:
    """A name the language or PyTorch has already: a layer kind (`conv`), a keyword, a module method (`to`)."""
    from ..ir import RESERVED
    from .writer import is_auto_name

    return (
        is_auto_name(name)
        or name in RESERVED
        or name in {"network", "input", "init", "train", "block", "residual", "concat", "seq", "gate"}
    )
