"""Text to syntax tree: the lark grammar in grammar/specc.lark, loaded once.

Syntax errors are turned into diagnostics with a named, friendly message
where the mistake matches one of a small catalogue of known-bad examples
(lark's `match_examples`). After an error on a line without braces the line
is blanked and the text parsed again, so that several independent mistakes
are reported in one go.
"""

from __future__ import annotations

import functools
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import ast
from .errors import Diagnostic, Source, Span, SpeccError

MAX_SYNTAX_ERRORS = 20


def _grammar_path() -> Path:
    """The grammar ships inside the wheel as specc/_grammar; in a checkout it lives in grammar/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_grammar" / "specc.lark", here.parent / "grammar" / "specc.lark"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError("specc's grammar file specc.lark is missing from the installation")


@functools.cache
def _parser() -> Lark:
    return Lark(
        _grammar_path().read_text(),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
        cache=True,
    )


def parse(text: str, path: str = "<string>") -> ast.Spec:
    """Parse a whole file; raise SpeccError with every syntax error found."""
    source = Source(text, path)
    diagnostics: list[Diagnostic] = []
    work = text if text.endswith("\n") else text + "\n"
    while True:
        try:
            tree = _parser().parse(work)
            break
        except UnexpectedInput as err:
            diagnostics.append(_diagnose(err, work))
            line = _blankable_line(err, work)
            if line is None or len(diagnostics) >= MAX_SYNTAX_ERRORS:
                break
            work = _blank_line(work, line)
    if diagnostics:
        raise SpeccError(diagnostics=diagnostics, source=source)
    try:
        return _ToAst().transform(tree)
    except VisitError as err:  # lark wraps what a transformer method raises
        if isinstance(err.orig_exc, SpeccError):
            raise SpeccError(diagnostics=err.orig_exc.diagnostics, source=source) from None
        raise


# ---- syntax error messages ----------------------------------------------------

# Known-bad snippets, matched by the parser state they fail in.
_CATALOGUE = {
    "a value is missing after '='": ["conv K= F=3\n", "conv K=\n", "train {\nepochs=\n}\n"],
    "a block parameter list needs commas between parameters": ["block b(K S=1) {\nrelu\n}\n"],
    "block call arguments are separated by commas": ["b(64 S=2)\n"],
    "'}' closes a group that was never opened": ["}\n", "relu\n}\n"],
    "a '{' must end its line; put the group's layers on the following lines": ["residual { relu }\n"],
    "a train section holds key=value settings": ["train {\nadam\n}\n"],
    "the input shape is written like 3x32x32 (channels x height x width)": ["input 3 32 32\n", "input\n"],
    "a network name is one word": ["network\n", "network my net\n"],
}


def _diagnose(err: UnexpectedInput, text: str) -> Diagnostic:
    if isinstance(err, UnexpectedEOF) or (isinstance(err, UnexpectedToken) and err.token.type == "$END"):
        return _unclosed_brace(text) or Diagnostic("unexpected end of file", _eof_span(text))
    span = Span(err.line, err.column, err.line, err.column + _width(err))
    if isinstance(err, UnexpectedCharacters):
        char = text[err.pos_in_stream]
        return Diagnostic(f"unexpected character {char!r}", span, "names are letters, digits and _; numbers like 3, 0.5 or 1e-3")
    known = err.match_examples(_parser().parse, _CATALOGUE, use_accepts=True)
    found = _describe(err.token)
    if known:
        return Diagnostic(f"{known} (found {found})", span)
    expected = ", ".join(sorted(_describe_terminal(t) for t in err.expected if not t.startswith("_")))
    return Diagnostic(f"unexpected {found}", span, f"expected one of: {expected}" if expected else None)


def _width(err: UnexpectedInput) -> int:
    token = getattr(err, "token", None)
    return max(1, len(str(token))) if token is not None and token.type != "_NL" else 1


def _describe(token: Token) -> str:
    if token.type == "_NL":
        return "end of line"
    return f"{token.value!r}"


_TERMINAL_WORDS = {
    "NAME": "a name",
    "INT": "a number",
    "FLOAT": "a number",
    "STRING": "a string",
    "SHAPE": "a shape like 3x32x32",
    "REPEAT": "a repeat like x2",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "LPAR": "'('",
    "RPAR": "')'",
    "EQUAL": "'='",
    "COMMA": "','",
    "CALL": "a block call like basic(",
    "COLON": "':'",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "STAR": "'*'",
    "SLASH": "'/'",
}


def _describe_terminal(name: str) -> str:
    return _TERMINAL_WORDS.get(name, name.lower())


def _unclosed_brace(text: str) -> Diagnostic | None:
    opened: list[tuple[int, int]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for col, char in enumerate(line.split("#", 1)[0], 1):
            if char == "{":
                opened.append((lineno, col))
            elif char == "}" and opened:
                opened.pop()
    if not opened:
        return None
    line, col = opened[-1]
    return Diagnostic("this '{' is never closed", Span(line, col, line, col + 1), "add a line with '}' where the group ends")


def _eof_span(text: str) -> Span:
    lines = text.rstrip("\n").splitlines() or [""]
    return Span(len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 2)


def _blankable_line(err: UnexpectedInput, text: str) -> int | None:
    """The line to blank for another try, or None where blanking would unbalance braces."""
    if isinstance(err, UnexpectedEOF) or getattr(getattr(err, "token", None), "type", None) == "$END":
        return None
    line = text.splitlines()[err.line - 1].split("#", 1)[0]
    return None if ("{" in line or "}" in line) else err.line


def _blank_line(text: str, line: int) -> str:
    lines = text.split("\n")
    lines[line - 1] = " " * len(lines[line - 1])
    return "\n".join(lines)


# ---- tree to AST ------------------------------------------------------------------


def _span(meta) -> Span:
    return Span(meta.line, meta.column, meta.end_line, meta.end_column)


def _tspan(token: Token) -> Span:
    return Span(token.line, token.column, token.end_line, token.end_column)


def _name(token: Token) -> ast.Name:
    return ast.Name(span=_tspan(token), text=str(token))


@v_args(meta=True)
class _ToAst(Transformer):
    """One short method per grammar rule; every node keeps its span."""

    # values
    def int(self, meta, children):
        return ast.Num(span=_span(meta), value=int(children[0]))

    def float(self, meta, children):
        return ast.Num(span=_span(meta), value=float(children[0]))

    def ref(self, meta, children):
        return ast.Ref(span=_span(meta), name=str(children[0]))

    def string(self, meta, children):
        return ast.Str(span=_span(meta), value=str(children[0])[1:-1])

    def neg(self, meta, children):
        return ast.Neg(span=_span(meta), operand=children[0])

    def _binop(op):  # noqa: N805 - a factory used at class-creation time
        def method(self, meta, children):
            return ast.BinOp(span=_span(meta), op=op, left=children[0], right=children[1])

        return method

    add, sub, mul, div = _binop("+"), _binop("-"), _binop("*"), _binop("/")

    # items
    def positional(self, meta, children):
        return ast.Arg(span=_span(meta), value=children[0])

    def keyword(self, meta, children):
        return ast.Arg(span=_span(meta), key=_name(children[0]), value=children[1])

    def call(self, meta, children):
        token, *args = children
        name = Token("NAME", token[:-1], line=token.line, column=token.column, end_line=token.end_line, end_column=token.end_column - 1)
        return name, [a for a in args if a is not None]

    def label(self, meta, children):
        return _name(children[0])

    def body(self, meta, children):
        return list(children)

    def statement(self, meta, children):
        label, head, *items, repeat, body = children
        name, call_args = head if isinstance(head, tuple) else (head, None)
        return ast.Statement(
            span=_span(meta),
            label=label,
            name=_name(name),
            call_args=call_args,
            items=items,
            repeat=int(repeat[1:]) if repeat else None,
            repeat_span=_tspan(repeat) if repeat else None,
            body=body,
        )

    # blocks and header
    def param(self, meta, children):
        return ast.Param(span=_span(meta), name=_name(children[0]), default=children[1])

    def block(self, meta, children):
        name, *params, body = children
        return ast.BlockDef(span=_span(meta), name=_name(name), params=[p for p in params if p is not None], body=body)

    def setting(self, meta, children):
        return ast.Setting(span=_span(meta), key=_name(children[0]), value=children[1])

    def network(self, meta, children):
        return ("network", _name(children[0]))

    def input(self, meta, children):
        return ("input", (tuple(int(n) for n in str(children[0]).split("x")), _tspan(children[0])))

    def init(self, meta, children):
        return ("init", _name(children[0]))

    def train(self, meta, children):
        return ("train", (list(children), _span(meta)))

    def start(self, meta, children):
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
                span = value.span if isinstance(value, ast.Name) else value[1]
                errors.append(Diagnostic(f"'{key}' is given twice", span, f"a spec has one '{key}' line"))
            fields[key] = value
    if errors:
        raise SpeccError(diagnostics=errors)
    spec = ast.Spec(blocks=fields["blocks"], body=fields["body"], network=fields.get("network"), init=fields.get("init"))
    updates = {}
    if "input" in fields:
        updates["input_shape"], updates["input_span"] = fields["input"]
    if "train" in fields:
        updates["train"], updates["train_span"] = fields["train"]
    return spec.model_copy(update=updates)
