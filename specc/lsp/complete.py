"""Completion: layer kinds, groups and blocks at the start of a statement; then that kind's
arguments (with their defaults and help) or the block's parameters; then an argument's choices."""

from __future__ import annotations

import re

from lsprotocol import types

from .. import ast
from ..expand import GROUP_FIELDS, INITS, KEYWORDS
from ..kind import Field
from ..layers import KINDS
from .outline import blocks
from .views import signature, source_of

_LABEL = re.compile(r"^\s*(?:[A-Za-z0-9_]+\s*:\s*)?")  # `stem: ` before a statement
_VALUE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=([A-Za-z0-9_.]*)$")  # `P=sa` being typed
_GIVEN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")
_BOOLS = ("true", "false")


def complete(text: str, spec: ast.Spec | None, line_before: str) -> list[types.CompletionItem]:
    """What may come at the cursor, given the text of its line up to the cursor."""
    if "#" in line_before:
        return []  # inside a comment
    statement = line_before[_LABEL.match(line_before).end() :]
    words = statement.split()
    if not words or (len(words) == 1 and not statement[-1].isspace() and "(" not in statement):
        return _starts(text, spec, indented=line_before[:1].isspace())
    head = re.match(r"[A-Za-z_][A-Za-z0-9_]*", statement)
    name = head.group() if head else ""
    defined = blocks(spec)
    if name in defined and "(" in statement and ")" not in statement:
        return _block_params(text, defined[name], statement)
    if name == "init" and len(words) <= 2:
        return [types.CompletionItem(w, kind=types.CompletionItemKind.EnumMember, detail="weight initialisation") for w in INITS]
    fields = KINDS[name].fields if name in KINDS else GROUP_FIELDS.get(name)
    if fields is None:
        return []
    typing = _VALUE.search(statement)
    if typing:
        field = next((f for f in fields if f.name == typing.group(1)), None)
        return _values(field) if field else []
    given = set(_GIVEN.findall(statement)) | set(words[1:])
    return [_field_item(f) for f in fields if f.name not in given] + [
        item for f in fields if f.positional and f.type in ("word", "bool") for item in _positional(f, given)
    ]


def _starts(text: str, spec: ast.Spec | None, indented: bool) -> list[types.CompletionItem]:
    kinds = [
        types.CompletionItem(k.name, kind=types.CompletionItemKind.Class, detail=k.hint_example(), documentation=k.help)
        for k in KINDS.values()
    ]
    groups = [
        types.CompletionItem(g, kind=types.CompletionItemKind.Struct, detail=f"{g} {{ … }}", documentation="a group of statements")
        for g in GROUP_FIELDS
    ]
    calls = [
        types.CompletionItem(
            name, kind=types.CompletionItemKind.Function, detail=signature(text, b), insert_text=f"{name}(", documentation="a block call"
        )
        for name, b in blocks(spec).items()
    ]
    # The header's words belong at the top level, never inside a block or group.
    header = [] if indented else [types.CompletionItem(w, kind=types.CompletionItemKind.Keyword) for w in KEYWORDS]
    return kinds + groups + calls + header


def _field_item(f: Field) -> types.CompletionItem:
    default = "required" if f.required else f"default {_shown(f.default)}"
    return types.CompletionItem(
        f.name, kind=types.CompletionItemKind.Field, detail=f"{f.name}: {f.type}, {default}", documentation=f.help, insert_text=f"{f.name}="
    )


def _positional(f: Field, given: set[str]) -> list[types.CompletionItem]:
    """Words that stand for themselves: `pool max`, `pool avg global`."""
    words = f.choices if f.type == "word" else (f.name,)
    return [types.CompletionItem(w, kind=types.CompletionItemKind.EnumMember, detail=f.help) for w in words if w not in given]


def _values(f: Field) -> list[types.CompletionItem]:
    words = f.choices or (_BOOLS if f.type == "bool" else ())
    return [types.CompletionItem(w, kind=types.CompletionItemKind.EnumMember, detail=f.help) for w in words]


def _block_params(text: str, block: ast.BlockDef, statement: str) -> list[types.CompletionItem]:
    given = set(_GIVEN.findall(statement))
    sig = signature(text, block)
    return [
        types.CompletionItem(
            p.name.text,
            kind=types.CompletionItemKind.Variable,
            detail=f"{p.name.text}, " + (f"default {source_of(text, p.default.span)}" if p.default is not None else "required"),
            documentation=sig,
            insert_text=f"{p.name.text}=",
        )
        for p in block.params
        if p.name.text not in given
    ]


def _shown(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
