"""Errors and warnings that users see, and the one renderer that draws them.

Every mistake a user can make (in a spec, a data folder, a weights file, a
command line) is raised as a `SpeccError`. The CLI catches it and prints it;
nothing else about it is special. A spec error carries a `Span` so that it
can be shown like a compiler's: `net.cnn:7:1: error: ...`, the source line,
a caret under the culprit, and a hint.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

# Exit codes of the CLI, named once.
EXIT_OK = 0
EXIT_FAILURE = 1  # data, weights, runtime: anything that is not the spec itself
EXIT_BAD_SPEC = 2  # the spec, or another input file the user named, is malformed
EXIT_INTERRUPTED = 130  # what a shell reports for Ctrl-C


@dataclass(frozen=True)
class Span:
    """Where a piece of source text is: 1-based line and column, end exclusive."""

    line: int
    column: int
    end_line: int
    end_column: int

    def until(self, other: Span) -> Span:
        return Span(self.line, self.column, other.end_line, other.end_column)


@dataclass
class Diagnostic:
    message: str
    span: Span | None = None
    hint: str | None = None
    severity: str = "error"  # "error" | "warning"
    notes: list[tuple[str, Span]] = field(default_factory=list)  # ("in call to basic", span of the call)

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


Calls = tuple[tuple[str, Span], ...] | list[tuple[str, Span]]  # ("in block 'basic', called here", span), outermost first


def position(d: Diagnostic) -> tuple[int, int]:
    """File order; diagnostics about the whole file first."""
    return (d.span.line, d.span.column) if d.span else (0, 0)


class Diagnostics:
    """The sink every stage reports into: the one place diagnostics are de-duplicated and given call-chain notes.

    A layer inside a block is met once per call and a mistake inside a repeat once per copy: the
    same message at the same place is recorded once. The block calls a diagnostic came through
    become notes, innermost first, except a call on the diagnostic's own line (the caret says it).
    """

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []
        self._seen: set[tuple[str, Span | None, str]] = set()  # a set: 4,000 repeats of one mistake stay linear

    def error(self, message: str, span: Span | None, hint: str, calls: Calls = (), notes=()) -> None:
        """Record an error; every error says how to fix it, so `hint` is required."""
        self._add(message, span, hint, "error", calls, notes)

    def warning(self, message: str, span: Span | None, hint: str, calls: Calls = ()) -> None:
        self._add(message, span, hint, "warning", calls, ())

    def extend(self, diagnostics: list[Diagnostic]) -> None:
        """Diagnostics made elsewhere (a syntax error's, already complete)."""
        for d in diagnostics:
            if (d.message, d.span, d.severity) not in self._seen:
                self._seen.add((d.message, d.span, d.severity))
                self.items.append(d)

    def _add(self, message, span, hint, severity, calls, notes) -> None:
        if (message, span, severity) in self._seen:
            return
        self._seen.add((message, span, severity))
        chain = [(text, where) for text, where in reversed(list(calls)) if span is None or where.line != span.line]
        self.items.append(Diagnostic(message, span, hint, severity, list(notes) + chain))

    def __len__(self) -> int:
        return len(self.items)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.items)

    @property
    def errors(self) -> list[Diagnostic]:
        """The errors in file order (a stable sort: one line's diagnostics in the order found)."""
        return sorted((d for d in self.items if d.is_error), key=position)

    @property
    def warnings(self) -> list[Diagnostic]:
        """The warnings in the order found, which is the order the network runs."""
        return [d for d in self.items if not d.is_error]


class SpeccError(Exception):
    """One or more user-facing problems. `exit_code` says which kind."""

    def __init__(
        self,
        message: str = "",
        span: Span | None = None,
        hint: str | None = None,
        *,
        diagnostics: list[Diagnostic] | None = None,
        source: Source | None = None,
        exit_code: int = EXIT_BAD_SPEC,
    ):
        self.diagnostics = diagnostics if diagnostics is not None else [Diagnostic(message, span, hint)]
        self.source = source
        self.exit_code = exit_code
        super().__init__(self.diagnostics[0].message if self.diagnostics else message)

    def render(self) -> str:
        return render_all(self.diagnostics, self.source)


class UsageError(SpeccError):
    """A problem with something other than the spec: data, weights, a flag. Exit code 1."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message, None, hint, exit_code=EXIT_FAILURE)


class InputFileError(SpeccError):
    """A file the user named is missing, truncated or of the wrong kind. Exit code 2."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message, None, hint, exit_code=EXIT_BAD_SPEC)


@dataclass(frozen=True)
class Source:
    """The text of one spec file and the name to show for it."""

    text: str
    path: str = "<string>"

    def line_text(self, line: int) -> str:
        """Line `line`, counted as the parser counts: only '\\n' ends a line (not '\\r' or '\\f' alone)."""
        lines = self.text.split("\n")
        return lines[line - 1].removesuffix("\r") if 0 < line <= len(lines) else ""


def printable(text: str) -> str:
    """`text` safe for a terminal: control characters as Python writes them (`\\x1b`, `\\n`), the rest as it is.

    For whatever came from a file or a command line (class names, paths, metadata): an escape sequence in a
    class name would otherwise clear the user's screen.
    """
    if text.isprintable():
        return text
    return "".join(c.encode("unicode_escape").decode("ascii") if _unsafe(c) else c for c in text)


def _unsafe(c: str) -> bool:
    """Control and format characters (escapes, bidi overrides), but not a tab, which stays a tab."""
    return c != "\t" and unicodedata.category(c).startswith("C")


def render(diag: Diagnostic, source: Source | None) -> str:
    """`file:line:col: severity: message`, the source line, a caret, then hint and notes; control characters escaped."""
    text = _render(diag, source)
    return "\n".join(_clip(printable(line)) for line in text.split("\n"))


MAX_LINE = 1000  # characters of one rendered line: a message quoting a 4,000-character token stays readable


def _clip(line: str) -> str:
    return line if len(line) <= MAX_LINE else f"{line[: MAX_LINE - 40]}…({len(line) - MAX_LINE + 40:,} characters more)"


def _render(diag: Diagnostic, source: Source | None) -> str:
    if diag.span is None or source is None:
        head = f"{source.path}: " if source is not None else ""
        out = [f"{head}{diag.severity}: {diag.message}"]
    else:
        out = [f"{source.path}:{diag.span.line}:{diag.span.column}: {diag.severity}: {diag.message}"]
        out += _excerpt(source, diag.span)
    if diag.hint:
        out.append(f"  hint: {diag.hint}")
    for text, span in diag.notes:
        where = f"{source.path}:{span.line}:{span.column}: " if source is not None else ""
        out.append(f"{where}note: {text}")
        if source is not None:
            out += _excerpt(source, span)
    return "\n".join(out)


EXCERPT_WIDTH = 120  # source characters shown around a span; a longer line is cut to a window with … at each cut end


def _excerpt(source: Source, span: Span) -> list[str]:
    text = source.line_text(span.line).rstrip("\n")
    if not text.strip():
        return []
    gutter = f"{span.line:>4} | "
    end = span.end_column if span.end_line == span.line else len(text) + 1
    start = span.column - 1  # 0-based, as the slices below
    first = max(0, min(start - EXCERPT_WIDTH // 4, len(text) - EXCERPT_WIDTH))
    shown = text[first : first + EXCERPT_WIDTH]
    left = "…" if first > 0 else ""
    right = "…" if first + EXCERPT_WIDTH < len(text) else ""
    width = max(1, min(end - 1, first + EXCERPT_WIDTH) - start)
    # Tabs stay tabs under the source, so the caret lines up whatever the terminal's tab width.
    shown = "".join("\ufffd" if _unsafe(c) else c for c in shown)  # one cell each: the caret stays in place
    pad = " " * len(left) + "".join("\t" if c == "\t" else " " for c in text[first:start])
    caret = " " * (len(gutter) - 2) + "| " + pad + "^" + "~" * (width - 1)
    return [gutter + left + shown + right, caret]


MAX_SHOWN = 20  # diagnostics drawn in full; the rest are counted, so a line of 4,000 mistakes prints a page, not 120 MB


def render_all(diagnostics: list[Diagnostic], source: Source | None) -> str:
    shown = [render(d, source) for d in diagnostics[:MAX_SHOWN]]
    rest = diagnostics[MAX_SHOWN:]
    if rest:
        errors = sum(d.is_error for d in rest)
        counts = [f"{n:,} more {kind}{'s' if n != 1 else ''}" for n, kind in ((errors, "error"), (len(rest) - errors, "warning")) if n]
        shown.append(f"... and {' and '.join(counts)} not shown (fix the first ones and check again)")
    return "\n".join(shown)
