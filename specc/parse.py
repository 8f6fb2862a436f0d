"""Text to syntax tree: the lark grammar in grammar/specc.lark, generated into lark_parser.py.

The tree is built while parsing (lark's inline transformer, LALR only): a
spec of a thousand layers is parsed and built in a few tens of milliseconds,
which a separate tree pass with position propagation would double. Every node
takes its span from the tokens under it.

Syntax errors get a named, friendly message (see syntax_errors.py). After an
error the offending line is blanked, keeping its braces, and the text parsed
again, so that several independent mistakes are reported in one go.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

from . import ast, parser_tables
from .errors import Diagnostic, Diagnostics, Source, Span, SpeccError
from .lark_parser import Lark, Token, Transformer, UnexpectedEOF, UnexpectedInput
from .syntax_errors import diagnose, token_type

MAX_SYNTAX_ERRORS = 20
# Sizes are 64-bit in torch (19 digits); the expander says "too large" with the field's range. Past this
# many digits a number is refused here, before Python's int() (which refuses 4,300) or arithmetic on it.
MAX_DIGITS = 100
MAX_LINE = 4096  # characters; longer lines are refused before parsing


class Parsed(NamedTuple):
    """What parsing gives: the spec as read once failing lines were blanked (None where no blanking
    made it parse), and the line before which every statement sits where the user put it, inside
    the same groups and blocks (infinity where no line was blanked, or none that moved others)."""

    spec: ast.Spec | None
    intact_before: float


@functools.cache
def _parser() -> Lark:
    # Made ahead of time from the grammar, never lark's cache=True (see parser_tables).
    return parser_tables.load(_ToAst())


def parse(text: str, path: str = "<string>") -> ast.Spec:
    """Parse a whole file; raise SpeccError with every syntax error found."""
    source, diagnostics = Source(text, path), Diagnostics()
    parsed = parse_spec(source, diagnostics)
    if diagnostics.has_errors:
        raise SpeccError(diagnostics=diagnostics.items, source=source)  # in the order found, as pipeline.build shows them
    return parsed.spec


def parse_spec(source: Source, diagnostics: Diagnostics) -> Parsed:
    """The parse stage: every syntax error into `diagnostics`, and the spec as far as it could be read."""
    text = source.text
    work: str | None = text if text.endswith("\n") else text + "\n"
    if work.startswith("\ufeff"):  # a byte-order mark from a Windows editor: a blank, so columns stay put
        work = " " + work[1:]
    long_lines = _long_lines(text)
    if long_lines:  # refused unread: lark takes a minute over a megabyte of arguments on one line
        diagnostics.extend(long_lines)
        return Parsed(None, 0)
    start, blanked = len(diagnostics), set()
    spec = None
    intact_before = math.inf
    while work is not None and len(diagnostics) - start < MAX_SYNTAX_ERRORS:
        try:
            spec = _parser().parse(work)
            break
        except UnexpectedInput as err:
            diagnostic = _on_original(diagnose(err, work), text, blanked)
            if diagnostic is None:
                break
            diagnostics.extend([diagnostic])
            line = _blankable_line(err, work)
            if line is None or line in blanked:
                break
            blanked.add(line)
            intact_before = min(intact_before, _intact_before(work, line, token_type(err) == "RBRACE"))
            work = _blank_line(work, line, token_type(err) == "RBRACE")
        except SpeccError as err:  # raised by the transformer, e.g. a header line given twice
            diagnostics.extend(err.diagnostics)
            break
        except RecursionError:
            diagnostics.error("the spec nests too deeply to read", Span(1, 1, 1, 2), "use blocks instead of deep nesting")
            break
    return Parsed(spec, intact_before)


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


# ---- recovery: blanking a failing line to find the next mistake ----------------


def _blankable_line(err: UnexpectedInput, text: str) -> int | None:
    """The line to blank for another try, or None at the end of the file."""
    if isinstance(err, UnexpectedEOF) or token_type(err) == "$END" or err.line < 1:
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
    return ast.Name(span=_tspan(token), text=str(token))


class _Call(NamedTuple):
    name: Token
    args: list[ast.Arg]
    span: Span  # from the name to the closing parenthesis


class _ToAst(Transformer):
    """One short method per grammar rule; called by the parser as it reduces, spans from tokens."""

    # values
    def int(self, children):
        return ast.Num(span=_tspan(children[0]), value=_whole(str(children[0]), children[0]))

    def float(self, children):
        return ast.Num(span=_tspan(children[0]), value=float(children[0]))

    def ref(self, children):
        return ast.Ref(span=_tspan(children[0]), name=str(children[0]))

    def string(self, children):
        return ast.Str(span=_tspan(children[0]), value=str(children[0])[1:-1])

    def sizes(self, children):
        values = tuple(_whole(n, children[0]) for n in str(children[0]).split("x"))
        return ast.Sizes(span=_tspan(children[0]), values=values)

    def neg(self, children):
        minus, operand = children
        return ast.Neg(span=_tspan(minus).until(operand.span), operand=operand)

    def _binop(op):  # noqa: N805 - a factory used at class-creation time
        def method(self, children):
            left, right = children
            return ast.BinOp(span=left.span.until(right.span), op=op, left=left, right=right)

        return method

    add, sub, mul, div = _binop("+"), _binop("-"), _binop("*"), _binop("/")

    # items
    def positional(self, children):
        return ast.Arg(span=children[0].span, value=children[0])

    def keyword(self, children):
        key, value = children
        return ast.Arg(span=_tspan(key).until(value.span), key=_name(key), value=value)

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
            return ast.Num(span=_tspan(token), value=_whole(token[1:], token)), _tspan(token)
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
                items.append(ast.Arg(span=_tspan(flag), value=ast.Ref(span=_tspan(flag), name=str(flag))))
        count, count_span = repeat or late_repeat or (None, None)
        return ast.Statement(
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
        return ast.Param(span=span, name=_name(name), default=default)

    def block(self, children):
        name, *params, body = children
        return ast.BlockDef(span=_tspan(name), name=_name(name), params=[p for p in params if p is not None], body=body)

    def setting(self, children):
        key, value = children
        return ast.Setting(span=_tspan(key).until(value.span), key=_name(key), value=value)

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
    return ast.Spec(
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
