"""The pygls server: each LSP request is a few lines that hand the document to analysis, views,
complete or outline. Documents are checked when opened and on every change; hover, inlay hints and
the rest read the last check of that text, so a keystroke costs one check."""

from __future__ import annotations

import os
import sys

from lsprotocol import types
from pygls import uris
from pygls.lsp.server import LanguageServer
from pygls.workspace import TextDocument

from .. import __version__
from . import complete, outline, views
from .analysis import Analysis, analyse

server = LanguageServer("specc", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
_checked: dict[str, Analysis] = {}  # uri -> the last check of that document's text


def serve() -> None:
    """Answer an editor on standard input and output until it says `exit`."""
    server.start_io()
    # pygls closes stdout on `exit`; the CLI's last flush must find an open file, not raise at the editor.
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - left open for the interpreter's own last flush


def _analysis(ls: LanguageServer, uri: str) -> tuple[TextDocument, Analysis]:
    doc = ls.workspace.get_text_document(uri)
    last = _checked.get(uri)
    if last is None or last.text != doc.source:
        last = _checked[uri] = analyse(doc.source, uri, uris.to_fs_path(uri) or uri)
    return doc, last


def _publish(ls: LanguageServer, uri: str) -> None:
    doc, analysis = _analysis(ls, uri)
    diagnostics = analysis.lsp_diagnostics()
    for d in diagnostics:  # specc counts characters; the client may count UTF-16 units
        d.range = doc.range_to_client_units(d.range)
        for info in d.related_information or []:
            info.location.range = doc.range_to_client_units(info.location.range)
    ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri, diagnostics, doc.version))


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: LanguageServer, params: types.DidOpenTextDocumentParams) -> None:
    _publish(ls, params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: LanguageServer, params: types.DidChangeTextDocumentParams) -> None:
    _publish(ls, params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: LanguageServer, params: types.DidCloseTextDocumentParams) -> None:
    _checked.pop(params.text_document.uri, None)
    ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(params.text_document.uri, []))


@server.feature(types.TEXT_DOCUMENT_HOVER)
def hover(ls: LanguageServer, params: types.HoverParams) -> types.Hover | None:
    doc, analysis = _analysis(ls, params.text_document.uri)
    text = views.hover(analysis, doc.position_from_client_units(params.position).line + 1)
    return types.Hover(types.MarkupContent(types.MarkupKind.Markdown, text)) if text else None


@server.feature(types.TEXT_DOCUMENT_INLAY_HINT)
def inlay_hint(ls: LanguageServer, params: types.InlayHintParams) -> list[types.InlayHint]:
    doc, analysis = _analysis(ls, params.text_document.uri)
    hints = views.inlay_hints(analysis, params.range.start.line, params.range.end.line)
    note = views.provisional(analysis)
    return [
        types.InlayHint(doc.position_to_client_units(types.Position(line, character)), label, padding_left=True, tooltip=note)
        for line, character, label in hints
    ]


@server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=["=", "(", " "]))
def completion(ls: LanguageServer, params: types.CompletionParams) -> types.CompletionList:
    doc, analysis = _analysis(ls, params.text_document.uri)
    at = doc.position_from_client_units(params.position)
    lines = analysis.text.split("\n")
    before = lines[at.line][: at.character] if at.line < len(lines) else ""
    return types.CompletionList(is_incomplete=False, items=complete.complete(analysis.text, analysis.spec, before))


@server.feature(types.TEXT_DOCUMENT_DEFINITION)
def definition(ls: LanguageServer, params: types.DefinitionParams) -> types.Location | None:
    doc, analysis = _analysis(ls, params.text_document.uri)
    at = doc.position_from_client_units(params.position)
    found = outline.definition(analysis.spec, outline.word_at(analysis.text, at.line, at.character))
    return types.Location(params.text_document.uri, doc.range_to_client_units(found)) if found else None


@server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
def document_symbol(ls: LanguageServer, params: types.DocumentSymbolParams) -> list[types.DocumentSymbol]:
    doc, analysis = _analysis(ls, params.text_document.uri)
    symbols = outline.symbols(analysis.spec, len(analysis.text.split("\n")))
    _to_client(doc, symbols)
    return symbols


def _to_client(doc: TextDocument, symbols: list[types.DocumentSymbol]) -> None:
    for s in symbols:
        s.range, s.selection_range = doc.range_to_client_units(s.range), doc.range_to_client_units(s.selection_range)
        _to_client(doc, s.children or [])


@server.feature(types.TEXT_DOCUMENT_FORMATTING)
def formatting(ls: LanguageServer, params: types.DocumentFormattingParams) -> list[types.TextEdit] | None:
    from ..errors import SpeccError
    from ..fmt import format_text  # `specc fmt`'s own function: the editor and the CLI lay a file out alike

    doc = ls.workspace.get_text_document(params.text_document.uri)
    try:
        formatted = format_text(doc.source, uris.to_fs_path(doc.uri) or doc.uri)
    except SpeccError:
        return None  # a file with syntax errors is left as it is; its diagnostics already say why
    if formatted == doc.source:
        return []
    lines = doc.source.split("\n")
    end = types.Position(len(lines) - 1, len(lines[-1]))
    return [types.TextEdit(types.Range(types.Position(0, 0), doc.position_to_client_units(end)), formatted)]
