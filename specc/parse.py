"""Text to syntax tree: the lark grammar in grammar/specc.lark, loaded once.

The tree is built while parsing (lark's inline transformer, LALR only): a
spec of a thousand layers is parsed and built in a few tens of milliseconds,
which a separate tree pass with position propagation would double. Every node
takes its span from the tokens under it.

Syntax errors get a named, friendly message where the parser state matches
one of a small catalogue of known-bad examples (the idea of lark's
`match_examples`, keyed by state so that a lookup is a dict access). After an
error the offending line is blanked, keeping its braces, and the text parsed
again, so that several independent mistakes are reported in one go.
"""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path
from typing import NamedTuple

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import ast, parser_tables
from .errors import Diagnostic, Source, Span, SpeccError

MAX_SYNTAX_ERRORS = 20
# Sizes are 64-bit in torch (19 digits); the expander says "too large" with the field's range. Past this
# many digits a number is refused here, before Python's int() (which refuses 4,300) or arithmetic on it.
MAX_DIGITS = 100
MAX_LINE = 4096  # characters; longer lines are refused before parsing


class ParseError(SpeccError):
    """Syntax errors, with the spec as read once the failing lines were blanked (`recovered`; None
    where no blanking made it parse). Its statements that start before line `intact_before` are
    where the user put them, inside the same groups and blocks."""

    def __init__(self, diagnostics: list[Diagnostic], source: Source, recovered: ast.Spec | None, intact_before: float):
        super().__init__(diagnostics=diagnostics, source=source)
        self.recovered, self.intact_before = recovered, intact_before


def _grammar_path() -> Path:
    """The grammar ships inside the wheel as specc/_grammar; in a checkout it lives in grammar/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_grammar" / "specc.lark", here.parent / "grammar" / "specc.lark"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError("specc's grammar file specc.lark is missing from the installation")


@functools.cache
def _parser() -> Lark:
    # Never lark's cache=True: it unpickles a file in the shared temp folder (see parser_tables).
    return parser_tables.load(_grammar_path().read_text(encoding="utf-8"), _ToAst())


def parse(text: str, path: str = "<string>") -> ast.Spec:
    """Parse a whole file; raise SpeccError with every syntax error found."""
    source = Source(text, path)
    diagnostics: list[Diagnostic] = []
    work: str | None = text if text.endswith("\n") else text + "\n"
    if work.startswith("\ufeff"):  # a byte-order mark from a Windows editor: a blank, so columns stay put
        work = " " + work[1:]
    long_lines = _long_lines(text)
    if long_lines:  # refused unread: lark takes a minute over a megabyte of arguments on one line
        raise ParseError(long_lines, source, None, 0)
    blanked: set[int] = set()
    spec = None
    intact_before = math.inf
    while work is not None and len(diagnostics) < MAX_SYNTAX_ERRORS:
        try:
            spec = _parser().parse(work)
            break
        except UnexpectedInput as err:
            diagnostic = _on_original(_diagnose(err, work), text, blanked)
            if diagnostic is None:
                break
            diagnostics.append(diagnostic)
            line = _blankable_line(err, work)
            if line is None or line in blanked:
                break
            blanked.add(line)
            intact_before = min(intact_before, _intact_before(work, line, _token_type(err) == "RBRACE"))
            work = _blank_line(work, line, _token_type(err) == "RBRACE")
        except SpeccError as err:  # raised by the transformer, e.g. a header line given twice
            diagnostics.extend(err.diagnostics)
            break
        except RecursionError:
            diagnostics.append(Diagnostic("the spec nests too deeply to read", Span(1, 1, 1, 2), "use blocks instead of deep nesting"))
            break
    if diagnostics:
        raise ParseError(diagnostics, source, spec, intact_before)
    return spec


def _on_original(diagnostic: Diagnostic, text: str, blanked: set[int]) -> Diagnostic | None:
    """A diagnostic found after blanking lines, pointed back into the user's text.

    A blanked line that opened a group reads `seq {`: an unclosed brace there is the user's
    last '{' on that line. Anything else on a blanked line is an echo of its first error.
    """
    span = diagnostic.span
    if span is None or span.line not in blanked:
        return diagnostic
    if not diagnostic.message.startswith("this '{'"):
        return None
    column = Source(text).line_text(span.line).split("#", 1)[0].rfind("{") + 1
    return Diagnostic(diagnostic.message, Span(span.line, column, span.line, column + 1), diagnostic.hint)


# ---- syntax error messages ----------------------------------------------------

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
    return None if position is None else (position, _token_type(err))


def _token_type(err: UnexpectedInput) -> str:
    if isinstance(err, UnexpectedToken):
        return err.token.type
    if isinstance(err, UnexpectedCharacters):
        return f"char {err.char}"
    return "$END"


def _diagnose(err: UnexpectedInput, text: str) -> Diagnostic:
    if isinstance(err, UnexpectedEOF) or _token_type(err) == "$END":
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


def _blankable_line(err: UnexpectedInput, text: str) -> int | None:
    """The line to blank for another try, or None at the end of the file."""
    if isinstance(err, UnexpectedEOF) or _token_type(err) == "$END" or err.line < 1:
        return None
    return err.line


def _intact_before(text: str, line: int, drop_closer: bool) -> float:
    """Up to which line blanking `line` leaves every statement in the group or block it was in.

    A line whose braces pair up among themselves (`residual { relu }`) changes no nesting. One
    that opens or closes a group may have been a block's head, so the lines after it move. A '}'
    that closed nothing means an opening line is missing somewhere before it: no line is known to
    be where the user meant it.
    """
    code = text.split("\n")[line - 1].split("#", 1)[0]
    if drop_closer and code.count("}") > code.count("{"):
        return 0
    depth = 0
    for char in code:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            return line
    return line if depth else math.inf


def _blank_line(text: str, line: int, drop_closer: bool) -> str | None:
    """Blank one line but keep its brace balance, so the lines around it still parse as they did.

    A line that opens a group becomes `seq {`; one that closes a group keeps its `}`; a stray
    `}` that caused the error is dropped (but not one that the same line opened, as in
    `train { epochs= }`). None where no one line can keep the balance.
    """
    lines = text.split("\n")
    code = lines[line - 1].split("#", 1)[0]
    balance = code.count("{") - code.count("}")
    if drop_closer and balance < 0:
        balance += 1
    if abs(balance) > 1:
        return None
    lines[line - 1] = {1: "seq {", -1: "}", 0: ""}[balance]
    return "\n".join(lines)


# ---- tree to AST ------------------------------------------------------------------


def _tspan(token: Token) -> Span:
    return Span(token.line, token.column, token.end_line, token.end_column)


def _long_lines(text: str) -> list[Diagnostic]:
    """An error for each line longer than MAX_LINE characters (a spec has one statement a line)."""
    found = []
    for number, line in enumerate(text.split("\n"), start=1):
        if len(line) > MAX_LINE:
            span = Span(number, MAX_LINE + 1, number, len(line) + 1)
            hint = f"write one statement a line, at most {MAX_LINE:,} characters; a repeat (`relu x4`) says it shorter"
            found.append(Diagnostic(f"line {number} is {len(line):,} characters long", span, hint))
            if len(found) == MAX_SYNTAX_ERRORS:
                break
    return found


def _whole(digits: str, token: Token) -> int:
    """The integer `digits` (part of `token`), refused with the token's span where it is absurdly long."""
    significant = len(digits.lstrip("0"))
    if significant > MAX_DIGITS:
        raise SpeccError(
            f"a number of {significant:,} digits is too large for anything in a spec",
            _tspan(token),
            "sizes and counts are 64-bit integers in torch (at most 19 digits): is the number pasted twice?",
        )
    return int(digits)


def _name(token: Token) -> ast.Name:
    return ast.Name.model_construct(span=_tspan(token), text=str(token))


class _Call(NamedTuple):
    name: Token
    args: list[ast.Arg]
    span: Span  # from the name to the closing parenthesis


class _ToAst(Transformer):
    """One short method per grammar rule; called by the parser as it reduces, spans from tokens."""

    # values
    def int(self, children):
        return ast.Num.model_construct(span=_tspan(children[0]), value=_whole(str(children[0]), children[0]))

    def float(self, children):
        return ast.Num.model_construct(span=_tspan(children[0]), value=float(children[0]))

    def ref(self, children):
        return ast.Ref.model_construct(span=_tspan(children[0]), name=str(children[0]))

    def string(self, children):
        return ast.Str.model_construct(span=_tspan(children[0]), value=str(children[0])[1:-1])

    def sizes(self, children):
        values = tuple(_whole(n, children[0]) for n in str(children[0]).split("x"))
        return ast.Sizes.model_construct(span=_tspan(children[0]), values=values)

    def neg(self, children):
        minus, operand = children
        return ast.Neg.model_construct(span=_tspan(minus).until(operand.span), operand=operand)

    def _binop(op):  # noqa: N805 - a factory used at class-creation time
        def method(self, children):
            left, right = children
            return ast.BinOp.model_construct(span=left.span.until(right.span), op=op, left=left, right=right)

        return method

    add, sub, mul, div = _binop("+"), _binop("-"), _binop("*"), _binop("/")

    # items
    def positional(self, children):
        return ast.Arg.model_construct(span=children[0].span, value=children[0])

    def keyword(self, children):
        key, value = children
        return ast.Arg.model_construct(span=_tspan(key).until(value.span), key=_name(key), value=value)

    def call(self, children):
        token, *args, rpar = children
        name = Token("NAME", token[:-1], line=token.line, column=token.column, end_line=token.end_line, end_column=token.end_column - 1)
        return _Call(name, [a for a in args if a is not None], _tspan(token).until(_tspan(rpar)))

    def label(self, children):
        return _name(children[0])

    def body(self, children):
        return list(children)

    def repeat(self, children):
        """`x3`, or `x N` with a value: the count as an expression, and the span of the whole repeat."""
        if len(children) == 1:
            token = children[0]
            return ast.Num.model_construct(span=_tspan(token), value=_whole(token[1:], token)), _tspan(token)
        times, value = children
        return value, _tspan(times).until(value.span)

    def statement(self, children):
        label, head, *items, repeat, freeze, body, late_repeat, late_freeze = children
        name, call_args, head_span = (head.name, head.args, head.span) if isinstance(head, _Call) else (head, None, _tspan(head))
        if repeat and late_repeat:
            message = "this group is repeated twice: before its '{' and after its '}'"
            raise SpeccError(diagnostics=[Diagnostic(message, late_repeat[1], "keep one of the two repeat counts")])
        last = _tspan(freeze) if freeze else repeat[1] if repeat else items[-1].span if items else head_span  # the head's line
        for flag in (freeze, late_freeze):
            if flag:  # `x2 freeze` means what `freeze x2` means; another word is the expander's to report
                items.append(ast.Arg.model_construct(span=_tspan(flag), value=ast.Ref.model_construct(span=_tspan(flag), name=str(flag))))
        count, count_span = repeat or late_repeat or (None, None)
        return ast.Statement.model_construct(
            span=(label.span if label else head_span).until(last),
            label=label,
            name=_name(name),
            call_args=call_args,
            items=items,
            repeat=count,
            repeat_span=count_span,
            body=body,
        )

    # blocks and header
    def param(self, children):
        name, default = children
        span = _tspan(name).until(default.span) if default is not None else _tspan(name)
        return ast.Param.model_construct(span=span, name=_name(name), default=default)

    def block(self, children):
        name, *params, body = children
        return ast.BlockDef.model_construct(span=_tspan(name), name=_name(name), params=[p for p in params if p is not None], body=body)

    def setting(self, children):
        key, value = children
        return ast.Setting.model_construct(span=_tspan(key).until(value.span), key=_name(key), value=value)

    def network(self, children):
        return ("network", _name(children[0]))

    def input(self, children):
        return ("input", (tuple(_whole(n, children[0]) for n in str(children[0]).split("x")), _tspan(children[0])))

    def init(self, children):
        return ("init", _name(children[0]))

    def train(self, children):
        keyword, *settings = children
        return ("train", (settings, _tspan(keyword)))

    def start(self, children):
        return _assemble(children)


def _assemble(children: list) -> ast.Spec:
    """Gather the top-level statements; header statements may appear once each."""
    fields: dict = {"blocks": [], "body": []}
    errors: list[Diagnostic] = []
    for child in children:
        if isinstance(child, ast.BlockDef):
            fields["blocks"].append(child)
        elif isinstance(child, ast.Statement):
            fields["body"].append(child)
        else:
            key, value = child
            if key in fields:
                first = _header_span(fields[key])
                note = [(f"the first '{key}' line", first)]
                errors.append(Diagnostic(f"'{key}' is given twice", _header_span(value), f"a spec has one '{key}' line", notes=note))
                continue
            fields[key] = value
    if errors:
        raise SpeccError(diagnostics=errors)
    input_shape, input_span = fields.get("input", (None, None))
    train, train_span = fields.get("train", ([], None))
    return ast.Spec.model_construct(
        network=fields.get("network"),
        input_shape=input_shape,
        input_span=input_span,
        init=fields.get("init"),
        train=train,
        train_span=train_span,
        blocks=fields["blocks"],
        body=fields["body"],
    )


def _header_span(value) -> Span:
    return value.span if isinstance(value, ast.Name) else value[1]
