"""`specc fmt`: one canonical layout for a spec, in which only the whitespace between tokens changes.

The layout is made from the tokens lark's own lexer finds with the spec's grammar (the contextual
lexer, driven by the parser, so that `x2` is a repeat where the parser says so): a layout that is
rebuilt from a syntax tree would have to remember every comment and parenthesis, one built from
the tokens cannot lose them. Before anything is written the result is lexed again, and it is refused
unless it yields the same tokens and the same comments: whatever the layout rules get wrong, the
network never changes.

The layout, as `terraform fmt` and ruff's formatter have one:
- four spaces for each group or block a line is in; a backslash continuation four more;
- `K=16`, `basic(128, S=2)`, `stem: conv`, `P=(F-1)/2`: no space around `=` and arithmetic, one
  after `,` and `:`, one everywhere else;
- trailing comments two spaces after the code, lined up across a paragraph (the lines between two
  blank or comment-only lines), as gofmt lines them up, but not behind a line of over 100 characters;
- at most one blank line in a row, none at the start or end of the file, after a line that opens a
  group or before one that closes it.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import parser_tables
from .errors import EXIT_FAILURE, InputFileError, SpeccError
from .lark_parser import Lark, Token, UnexpectedInput
from .parse import parse

INDENT = "    "
COMMENT_GAP = "  "  # between the code and a trailing comment
ALIGN_WITHIN = 100  # a longer line's comment follows it without pushing its paragraph's comments out
_NL = "_NL"
_GLUED_AFTER = {"EQUAL", "CALL", "LPAR", "PLUS", "STAR", "SLASH"}  # no space follows these
_GLUED_BEFORE = {"EQUAL", "COMMA", "COLON", "RPAR", "PLUS", "STAR", "SLASH"}  # nor precedes these
_NL_PARTS = re.compile(r"#[^\n]*|\n")
_REPEAT_WORD = re.compile(r"x\d*")  # a name that a space before it would make a repeat (x2, or x of `x N`)


def format_text(text: str, path: str = "<string>") -> str:
    """`text` in the canonical layout; SpeccError with the usual diagnostics where it does not parse."""
    parse(text, path)  # a syntax error is reported as `specc check` reports it
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    work = _lexable(text)
    tokens, unary = _tokens(work)
    lines = _lines(tokens, unary, work)
    first_end = text.find("\n")  # a file that ends its lines with \r\n keeps them
    formatted = _render(lines, "\r\n" if first_end > 0 and text[first_end - 1] == "\r" else "\n")
    _same_tokens(tokens, formatted, path)
    return bom + formatted


# ---- tokens ---------------------------------------------------------------------------------


def _lexable(text: str) -> str:
    """The text as the parser reads it: a byte-order mark as a blank, a final newline."""
    work = " " + text[1:] if text.startswith("\ufeff") else text
    return work if work.endswith("\n") else work + "\n"


@functools.cache
def _tree_parser() -> Lark:
    """The parser of parse.py, building lark's own tree rather than specc's."""
    return parser_tables.load()


def _tokens(text: str) -> tuple[list[Token], set[int]]:
    """Every token the parser consumes, in order, and the offsets of the minus signs that negate.

    A `-` is a negation or a subtraction by where the parser put it, not by what stands before it
    (`relu -1` negates, `pool max -1` subtracts), so the tree says which.
    """
    interactive = _tree_parser().parse_interactive(text)
    tokens = list(interactive.iter_parse())
    tree = interactive.feed_eof()
    unary = {node.children[0].start_pos for node in tree.iter_subtrees() if node.data == "neg" and isinstance(node.children[0], Token)}
    return tokens, unary


def _signature(tokens: list[Token]) -> list[tuple[str, ...]]:
    """What formatting must keep: every token, and every comment with its trailing blanks cut.

    Blank lines at the start of the file are the one line end that goes: a leading comment-free _NL."""
    kept = [
        (_NL, *(part.rstrip() for part in _NL_PARTS.findall(t.value) if part != "\n")) if t.type == _NL else (t.type, str(t))
        for t in tokens
    ]
    return kept[1:] if kept[:1] == [(_NL,)] else kept


def _same_tokens(tokens: list[Token], formatted: str, path: str) -> None:
    try:
        again, _ = _tokens(_lexable(formatted))
    except UnexpectedInput:
        again = []
    if _signature(again) != _signature(tokens):
        raise SpeccError(
            f"{path}: formatting would change the spec's tokens, so the file is left as it was",
            hint="this is a bug in specc fmt: please report it with the file",
            exit_code=EXIT_FAILURE,
        )


# ---- lines ----------------------------------------------------------------------------------


@dataclass
class _Line:
    depth: int = 0
    parts: list[str] = field(default_factory=list)  # physical lines of the code: more than one after a `\`
    comment: str | None = None
    blank: bool = False
    closes: bool = False  # starts with '}'
    opens: bool = False  # ends with '{'

    @property
    def empty(self) -> bool:
        return not self.parts and self.comment is None


def _lines(tokens: list[Token], unary: set[int], text: str) -> list[_Line]:
    """The logical lines of the spec: code, a trailing comment, comment-only lines and blank lines."""
    lines: list[_Line] = []
    line, depth, previous, earlier = _Line(), 0, None, None
    for token in tokens:
        if token.type == _NL:
            for part in _NL_PARTS.findall(token.value):
                if part == "\n":
                    lines.append(line if not line.empty else _Line(blank=True))
                    line = _Line(depth=depth)
                else:  # a comment: after code on its line, or a line of its own at the current depth
                    line.comment = part.rstrip()
            previous = earlier = None
            continue
        if token.type == "RBRACE":
            depth -= 1
            if not line.parts:
                line.depth, line.closes = depth, True
        if not line.parts:
            line.depth, line.parts = depth, [""]
        elif "\\" in text[previous.end_pos : token.start_pos]:  # the user's continuation stays
            line.parts.append(INDENT)
        elif _spaced(earlier, previous, token, unary):
            line.parts[-1] += " "
        line.parts[-1] += str(token)
        line.opens = token.type == "LBRACE"
        depth += token.type == "LBRACE"
        earlier, previous = previous, token
    if not line.empty:
        lines.append(line)
    return _blank_lines(lines)


def _spaced(earlier: Token | None, previous: Token, token: Token, unary: set[int]) -> bool:
    """Whether one space separates `previous` and `token` on a line (`earlier` came before both)."""
    if previous.type in _GLUED_AFTER or token.type in _GLUED_BEFORE:
        return False
    if token.type == "NAME" and previous.end_pos == token.start_pos and _REPEAT_WORD.fullmatch(token):
        return False  # `b(4)x2` is a mistake the checker names; a space would make it a repeat
    if previous.type == "MINUS":  # `-1`, `F-1`: a minus sign is always followed directly
        return False
    if token.type == "MINUS":  # `F-1` but `relu -1`
        return token.start_pos in unary
    # `block basic(K)`; elsewhere `relu (3)` must keep its space, or it would read as a call
    return not (token.type == "LPAR" and earlier is not None and earlier.type == "BLOCK")


def _blank_lines(lines: list[_Line]) -> list[_Line]:
    """At most one blank line in a row; none at the ends, after a '{' line or before a '}' line."""
    kept: list[_Line] = []
    for index, line in enumerate(lines):
        if line.blank:
            after = lines[index + 1] if index + 1 < len(lines) else None
            if not kept or kept[-1].blank or kept[-1].opens or after is None or after.blank or after.closes:
                continue
        kept.append(line)
    while kept and kept[-1].blank:
        kept.pop()
    return kept


# ---- text -----------------------------------------------------------------------------------


def _render(lines: list[_Line], newline: str) -> str:
    out = []
    for paragraph in _paragraphs(lines):
        widths = [_width(line) for line in paragraph if line.parts and line.comment]
        column = max((width for width in widths if width <= ALIGN_WITHIN), default=0)
        for line in paragraph:
            out.append(_physical(line, column))
    return "".join(text + newline for text in out)


def _width(line: _Line) -> int:
    return len(INDENT * line.depth + line.parts[-1])


def _paragraphs(lines: list[_Line]) -> list[list[_Line]]:
    """Runs of code lines whose trailing comments line up; a blank or comment-only line ends one."""
    runs: list[list[_Line]] = [[]]
    for line in lines:
        if not line.parts:
            runs += [[line], []]
        else:
            runs[-1].append(line)
    return [run for run in runs if run]


def _physical(line: _Line, column: int) -> str:
    if line.blank:
        return ""
    indent = INDENT * line.depth
    if not line.parts:
        return indent + (line.comment or "")
    code = " \\\n".join(indent + part for part in line.parts)
    if line.comment is None:
        return code
    return code + " " * max(0, column - _width(line)) + COMMENT_GAP + line.comment


# ---- files ----------------------------------------------------------------------------------


def spec_files(path: str | Path) -> list[Path]:
    """A spec file as it is, or every .cnn file under a folder (hidden folders such as .git left out)."""
    path = Path(path)
    if path.is_dir():
        found = sorted(p for p in path.rglob("*.cnn") if p.is_file() and not _hidden(p.relative_to(path)))
        if not found:
            raise InputFileError(f"no .cnn files under {path}", "name a spec file, or a folder that holds some")
        return found
    if not path.exists():
        raise InputFileError(f"no such spec file: {path}", "check the path; specs end in .cnn")
    return [path]


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def read_spec(path: Path) -> str:
    """The file's text with its line endings as they are (\\r\\n stays), so that only the layout changes."""
    try:
        with open(path, encoding="utf-8", newline="") as file:
            return file.read()
    except (UnicodeDecodeError, PermissionError, IsADirectoryError) as err:
        raise InputFileError(f"cannot read {path} as a spec: {err.__class__.__name__}", "a spec is a UTF-8 text file") from None


def write_atomic(path: Path, text: str) -> None:
    """Replace the file in one step (a temporary file beside it, then a rename): an interrupted write
    leaves the old file whole. The file keeps its permissions; a symbolic link stays a link."""
    target = path.resolve()
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with open(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        os.chmod(temporary, target.stat().st_mode & 0o7777)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def unified_diff(before: str, after: str, path: str) -> str:
    """What formatting would change, as `diff -u` shows it."""
    old, new = (text.splitlines(keepends=True) for text in (before, after))
    if old and not old[-1].endswith("\n"):
        old[-1] += "\n\\ No newline at end of file\n"
    return "".join(difflib.unified_diff(old, new, f"{path}\t(original)", f"{path}\t(formatted)"))
