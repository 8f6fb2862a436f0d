"""The grammar's LALR tables, shipped as JSON beside this module, so that no run builds them or unpickles them.

Building the tables from grammar/specc.lark costs several times a whole `specc check`, which is
why the parser used lark's `cache=True`. That cache is a pickle in the shared temp folder under a
name anyone can predict, and lark unpickles it before checking anything: a file planted there by
another local user ran code in every check. JSON cannot run code. The tables are lark's own
serialisation (`memo_serialize`, what `Lark.save` pickles and the standalone generator embeds),
written with tuples and non-string keys tagged so that it reads back exactly as it was.

The file records the grammar's sha256 and lark's version. Where either differs (a grammar edited in
a checkout, another lark release) the tables are built from the grammar instead: slower, never
wrong. tests/test_security.py fails until the file is written again with

    python grammar/write_tables.py
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import lark
from lark import Lark, Transformer
from lark.grammar import Rule
from lark.lexer import TerminalDef

TABLES = Path(__file__).resolve().parent / "parser_tables.json"
OPTIONS = {"parser": "lalr", "lexer": "contextual", "maybe_placeholders": True}
# Options that are objects, not data: given again when the tables are read, never written.
_RUNTIME_OPTIONS = ("transformer", "postlex", "lexer_callbacks", "tree_class", "_plugins")
_TUPLE, _ITEMS = "__tuple__", "__items__"


def grammar_digest(grammar: str) -> str:
    return hashlib.sha256(grammar.encode("utf-8")).hexdigest()


def build(grammar: str, transformer: Transformer | None = None) -> Lark:
    """The parser built from the grammar text, with no cache of any kind."""
    return Lark(grammar, transformer=transformer, cache=False, **OPTIONS)


def load(grammar: str, transformer: Transformer) -> Lark:
    """The parser for this grammar: from the shipped tables where they match it, else built."""
    try:
        stored = json.loads(TABLES.read_text(encoding="utf-8"), object_hook=_decode)
    except (OSError, ValueError):
        stored = None
    made_for = (grammar_digest(grammar), lark.__version__)
    if not isinstance(stored, dict) or (stored.get("grammar_sha256"), stored.get("lark")) != made_for:
        return build(grammar, transformer)
    return Lark._load_from_dict(stored["data"], stored["memo"], transformer=transformer)


def serialize(grammar: str) -> str:
    """The JSON text of the tables for this grammar, as the file holds it."""
    data, memo = build(grammar).memo_serialize([TerminalDef, Rule])
    data["options"] = {k: v for k, v in data["options"].items() if k not in _RUNTIME_OPTIONS}
    stored = {"grammar_sha256": grammar_digest(grammar), "lark": lark.__version__, "data": data, "memo": memo}
    return json.dumps(_encode(stored), sort_keys=True, separators=(",", ":")) + "\n"


def _encode(value):
    if isinstance(value, tuple):
        return {_TUPLE: [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: _encode(v) for k, v in value.items()}
        return {_ITEMS: [[_encode(k), _encode(v)] for k, v in value.items()]}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"lark's tables hold a {type(value).__name__}, which JSON cannot keep")


def _decode(obj: dict):
    if len(obj) == 1:
        if _TUPLE in obj:
            return tuple(obj[_TUPLE])
        if _ITEMS in obj:
            return {k: v for k, v in obj[_ITEMS]}  # keys are decoded already: ints, or tuples
    return obj
