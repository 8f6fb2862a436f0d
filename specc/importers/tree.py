"""What the importer builds between the ONNX graph and the spec text: layers and groups, in order."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Layer:
    """One spec line: `name: kind args`, and the tensors it carries by torch parameter name."""

    kind: str
    args: dict[str, Any] = field(default_factory=dict)  # only those that differ from the kind's defaults
    name: str | None = None
    tensors: dict[str, Any] = field(default_factory=dict)  # "weight", "bias", "running_mean", ... -> numpy array
    source: str | None = None  # the source module it came from (`layer1.0.conv1`), activations too; never legalised
    repeat: int | str = 1  # in a block's body, `silu x A`: a parameter that is 0 where a unit has no such layer

    def __deepcopy__(self, memo):
        """A copy that shares its tensors, which are replaced but never changed in place: blocks.py copies
        layers often, and copying VGG's arrays each time took a second."""
        return dataclasses.replace(self, args=copy.deepcopy(self.args, memo), tensors=dict(self.tensors))


@dataclass
class Group:
    """`residual`, `concat`, `gate` or `seq`: branches for concat, one body otherwise."""

    kind: str
    branches: list[list[Statement]]
    words: str = ""  # what follows the kind on its line: `shortcut=project`
    shortcut: list[Layer] = field(default_factory=list)  # residual: the projection's conv and batchnorm
    shortcut_first: bool = False  # residual: the projection comes before the body (RegNet)
    name: str | None = None  # a `seq` of block calls: the source's stage name (`layer2`)
    source: str | None = None  # the source module of the node that joins the branches (`features.5`)


Statement = Layer | Group


def layers_in_order(statements: list[Statement]):
    """Layers in specc's execution order: a residual's shortcut after its body unless `shortcut_first`."""
    for st in statements:
        if isinstance(st, Layer):
            yield st
            continue
        yield from st.shortcut if st.shortcut_first else ()
        for branch in st.branches:
            yield from layers_in_order(branch)
        yield from () if st.shortcut_first else st.shortcut
