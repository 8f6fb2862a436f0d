"""Syntax errors in words: the catalogue of known mistakes, and the message for any other.

A failing parse is given a named, friendly message where the parser state matches one of a small
catalogue of known-bad examples (the idea of lark's `match_examples`, keyed by (state, token) so that a
lookup is a dict access; the table is worked out once from the examples). Other failures are told by
what lark expected there, in words, or by the unclosed bracket or stray character that caused them.
Apart from parse.py, which turns text into the syntax tree and recovers after each error.
"""

from __future__ import annotations

import functools
import re

from .errors import Diagnostic, Source, Span, SpeccError
from .lark_parser import Token, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

# Known-bad snippets, matched by the parser state they fail in and the token they fail on:
# (message, hint, examples). Each example starts after a valid line, so that the parser's
# stack is as deep as in a real file.
VALUE_MISSING = "a value is missing after '='"
REPEAT_LAST = "a repeat count goes last on the line; only `freeze` may follow it"
_CATALOGUE = [
    (
        VALUE_MISSING,
        "write e.g. K=16",
        ["relu\nconv K=\n", "relu\nconv F=3 K=\n", "relu\nb(K=)\n", "relu\nb(K=, S=1)\n", "train {\nepochs=\n}\n", "train { epochs= }\n"],
    ),
    ("'=' must follow an argument name", "write e.g. K=16", ["relu\nconv K=16 =\n", "relu\nconv =3\n", "relu\nb(64 =)\n"]),
    ("a block's parameters are separated by commas", "write e.g. block basic(K, S=1) {", ["block b(K S=1) {\nrelu\n}\n"]),
    ("a block call's arguments are separated by commas", "write e.g. basic(64, S=2)", ["relu\nb(64 S=2)\n", "relu\nb(K=64 S=2)\n"]),
    ("'}' closes a group that was never opened", "remove it, or add the line with '{' that it closes", ["relu\n}\n", "}\n"]),
    (
        "a '{' must end its line",
        "put the group's layers on the lines after it, and the '}' on a line of its own",
        ["relu\nresidual { relu }\n", "relu\nresidual {relu\n}\n", "relu\nseq { }\n"],
    ),
    ("a train section holds key=value settings", "write e.g. epochs=10", ["train {\nadam\n}\n", "train {\nepochs 3\n}\n"]),
    (
        "the input shape is written like 3x32x32",
        "channels x length (1-D), channels x height x width (2-D) or channels x depth x height x width (3-D)",
        ["input 3 32 32\n", "input\n", "input x\n", "input 3x32x\n", "input 3, 32, 32\n"],
    ),
    ("a network name cannot start with a digit", "start it with a letter or _, as in network net2", ["network 2net\n", "network 2.5\n"]),
    ("a network name is one word", "letters, digits and _, as in network my_net", ["network\n", "network my net\n"]),
    ("an initialisation is one word", "init default, init kaiming or init xavier", ["init\n", "init he normal\n"]),
    (
        "a block definition needs a name and a parameter list",
        "write e.g. block basic(K, S=1) {",
        ["block\n", "block b\n", "block b {\nrelu\n}\n", "block b() relu\n"],
    ),
    ("a block's body goes in braces", "end this line with '{', and close the body with '}' on a line of its own", ["block b(K)\nrelu\n"]),
    (
        "a line starts with a layer, a block call or a keyword",
        "e.g. conv K=16 F=3, basic(64), or input 3x32x32",
        ["relu\n= 3\n", "relu\n, relu\n", "relu\n3\n"],
    ),
    (
        REPEAT_LAST,
        "write e.g. basic(64, S=2) x2, or basic(64) x2 freeze",
        [
            "relu\nrelu x2 K=3\n",
            "relu\nconv K=3 x2 F=3\n",
            "relu\nb(4) x2 S=2\n",
            "relu\nrelu x2 freeze K=3\n",
            "relu\nseq {\nrelu\n} x2 K=3\n",
            "relu\nseq {\nrelu\n} x2 freeze K=3\n",
        ],
    ),
    ("a group's repeat count goes after a space", "write e.g. `} x2`", ["relu\nseq {\nrelu\n}x2\n"]),
]


@functools.cache
def _catalogue() -> dict[tuple[int, str], tuple[str, str]]:
    """(parser state, token type) -> message, worked out once from the examples above."""
    from .parse import _parser  # here, not at the top: parse.py imports this module

    table: dict[tuple[int, str], tuple[str, str]] = {}
    for message, hint, examples in _CATALOGUE:
        for example in examples:
            try:
                _parser().parse(example)
            except (UnexpectedToken, UnexpectedCharacters) as err:
                key = _key(err)
                if key is not None:
                    table.setdefault(key, (message, hint))
            except (UnexpectedInput, SpeccError):
                pass
    return table


def _key(err: UnexpectedInput) -> tuple[int, str] | None:
    state = getattr(err, "state", None)
    position = getattr(state, "position", None)
    return None if position is None else (position, token_type(err))


def token_type(err: UnexpectedInput) -> str:
    if isinstance(err, UnexpectedToken):
        return err.token.type
    if isinstance(err, UnexpectedCharacters):
        return f"char {err.char}"
    return "$END"


def diagnose(err: UnexpectedInput, text: str) -> Diagnostic:
    if isinstance(err, UnexpectedEOF) or token_type(err) == "$END":
        return _unclosed(text, "{", "}") or Diagnostic(
            "the file ends in the middle of a statement", _eof_span(text), "finish the last statement, or remove it"
        )
    if isinstance(err, UnexpectedCharacters):
        return _bad_character(err)
    token = err.token
    span = Span(err.line, err.column, err.line, err.column + (len(token.value) if token.type != "_NL" else 1))
    if "RPAR" in err.expected and token.type != "RPAR":
        unclosed = _unclosed(Source(text).line_text(err.line), "(", ")", line=err.line)
        if unclosed:
            return unclosed
    known = _catalogue().get(_key(err))
    if token.type == "EQUAL" or (known and known[0] == VALUE_MISSING):
        before = Source(text).line_text(err.line)[: err.column - 1]
        missing = _value_missing(before, err.line, after_next_word=token.type == "EQUAL")
        if missing:
            return missing
    if known and known[0] == REPEAT_LAST and token.type == "EQUAL":  # `x2 S=2`: point at the S, not its '='
        word = re.search(r"[A-Za-z_]\w*[ \t]*$", Source(text).line_text(err.line)[: err.column - 1])
        if word:
            span = Span(err.line, word.start() + 1, err.line, word.start() + 1 + len(word.group().rstrip()))
    if known:
        return Diagnostic(known[0], span, known[1])
    expected = _expected(err.expected)
    hint = f"expected {expected}" if expected else "remove it, or compare the line with the README's examples"
    return Diagnostic(f"unexpected {_describe(token)}", span, hint)


def _value_missing(before: str, lineno: int, after_next_word: bool) -> Diagnostic | None:
    """Point at the `K=` that lacks its value, in the text `before` the parser's error.

    `K= F=3` reads as K=F, then a stray '=': there the missing value belongs after the
    `K=` one word back (`after_next_word`).
    """
    pattern = r"([A-Za-z_]\w*)[ \t]*=[ \t]+[A-Za-z_]\w*[ \t]*$" if after_next_word else r"([A-Za-z_]\w*)[ \t]*=[ \t]*$"
    match = re.search(pattern, before)
    if not match:
        return None
    name = match.group(1)
    end = before.index("=", match.end(1)) + 2
    example = {"K": 16, "F": 3, "S": 2, "P": 1, "p": 0.5}.get(name, 1)
    return Diagnostic(
        f"a value is missing after '{name}='", Span(lineno, match.start(1) + 1, lineno, end), f"give {name} a value, as in {name}={example}"
    )


def _bad_character(err: UnexpectedCharacters) -> Diagnostic:
    span = Span(err.line, err.column, err.line, err.column + 1)
    char = err.char
    hints = {
        ";": "write one statement a line; ';' is not needed",
        "×": "write shapes with a plain letter x, as in 3x32x32",
        "[": "arguments are written key=value, without brackets",
        "]": "arguments are written key=value, without brackets",
        "'": 'strings are written in double quotes: "like this"',
        '"': "a string ends on the line it starts",
    }
    hint = hints.get(char, "names are letters, digits and _; numbers look like 3, 0.5 or 1e-3")
    if char.isspace():
        return Diagnostic(f"unexpected whitespace character {char!r}", span, "indent with spaces or tabs only")
    return Diagnostic(f"unexpected character {char!r}", span, hint)


def _describe(token: Token) -> str:
    if token.type == "_NL":
        return "end of line"
    if token.type == "$END":
        return "end of file"
    return repr(str(token.value))


_TERMINAL_WORDS = {
    "NAME": "a name",
    "INT": "a number",
    "FLOAT": "a number",
    "STRING": "a string",
    "SHAPE": "a shape like 3x32x32",
    "REPEAT": "a repeat like x2",
    "TIMES": "a repeat like x N",
    "CALL": "a block call like basic(64)",
    "_NL": "the end of the line",
    "$END": "the end of the file",
    "TRAIN": "train",
    "NETWORK": "network",
    "INPUT": "input",
    "INIT": "init",
    "BLOCK": "block",
}
_PUNCTUATION = {"LBRACE": "{", "RBRACE": "}", "LPAR": "(", "RPAR": ")", "EQUAL": "=", "COMMA": ",", "COLON": ":"}
_VALUE_START = {"INT", "FLOAT", "NAME", "STRING", "LPAR", "MINUS"}
_OPERATORS = {"PLUS", "MINUS", "STAR", "SLASH"}


def _expected(terminals) -> str:
    """lark's expected terminals as a short phrase: 'a value', "'=' or ')'" ..."""
    names = set(terminals)
    words: list[str] = []
    if _VALUE_START <= names:
        words.append("a value")
        names -= _VALUE_START
    if _OPERATORS <= names | {"MINUS"}:
        words.append("an operator (+ - * /)")
        names -= _OPERATORS
    for name in sorted(names, key=lambda n: (n not in _PUNCTUATION, n)):
        word = f"'{_PUNCTUATION[name]}'" if name in _PUNCTUATION else _TERMINAL_WORDS.get(name)
        if word and word not in words:
            words.append(word)
    if len(words) > 1:
        return ", ".join(words[:-1]) + " or " + words[-1]
    return words[0] if words else ""


def _unclosed(text: str, opener: str, closer: str, line: int | None = None) -> Diagnostic | None:
    """The last `opener` that no `closer` matches, ignoring comments; in one line where `line` is given."""
    opened: list[tuple[int, int]] = []
    for lineno, row in enumerate(text.split("\n"), 1):
        for col, char in enumerate(row.split("#", 1)[0], 1):
            if char == opener:
                opened.append((line or lineno, col))
            elif char == closer and opened:
                opened.pop()
    if not opened:
        return None
    where, col = opened[-1]
    hint = "add a line with '}' where the group ends" if opener == "{" else f"add the missing '{closer}'"
    return Diagnostic(f"this '{opener}' is never closed", Span(where, col, where, col + 1), hint)


def _eof_span(text: str) -> Span:
    lines = text.rstrip("\n").split("\n")
    return Span(len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 2)
