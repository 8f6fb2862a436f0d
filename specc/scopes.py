"""Namespaces and the context a statement is expanded in: what names are taken, what parameters mean.

The naming rules themselves are in specc/expand.py's docstring; a Scope hands out the names.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import ast
from .errors import Diagnostics, Span
from .ir import module_name_problem

if TYPE_CHECKING:
    from .values import Value


class Scope:
    """A namespace: hands out unique names, by counter per kind or by index."""

    def __init__(self, path: tuple[str, ...], numbered: bool = False):
        self.path, self.numbered = path, numbered
        self.taken: dict[str, Span | None] = {}
        self.counts: Counter[str] = Counter()
        self.index = 0

    def take(self, label: ast.Name | None, base: str, diagnostics: Diagnostics) -> str:
        if label is not None:
            problem = module_name_problem(label.text, top_level=not self.path)
            if problem:
                message, hint = problem
                diagnostics.error(message, label.span, hint)
            elif label.text in self.taken:
                first = self.taken[label.text]
                if first is None:
                    hint = f"an unnamed layer before it is called '{label.text}' automatically; choose another name"
                    diagnostics.error(f"the name '{label.text}' is already taken", label.span, hint)
                else:
                    note = [(f"'{label.text}' is first used here", first)]
                    hint = "each layer or block in one place needs its own name"
                    diagnostics.error(f"the name '{label.text}' is used twice here", label.span, hint, notes=note)
            self.taken[label.text] = label.span
            return label.text
        while True:
            if self.numbered:
                name, self.index = str(self.index), self.index + 1
            else:
                self.counts[base] += 1
                name = f"{base}{self.counts[base]}"
            if name not in self.taken:
                self.taken[name] = None
                return name


@dataclass
class Context:
    scope: Scope
    env: dict[str, Value] = field(default_factory=dict)
    calls: list[tuple[str, Span]] = field(default_factory=list)  # notes: where each enclosing block was called
    frozen: bool = False
    blocks: tuple[str, ...] = ()  # the enclosing block calls, outermost first

    def inside(self, scope: Scope | None = None, **changes) -> Context:
        return Context(
            scope or self.scope,
            changes.get("env", self.env),
            changes.get("calls", self.calls),
            changes.get("frozen", self.frozen),
            changes.get("blocks", self.blocks),
        )
