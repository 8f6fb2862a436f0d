"""`specc lsp` driven as an editor drives it: a real subprocess, JSON-RPC over its stdin and stdout.

One server for the module (starting one costs an import of specc and pygls); every read has a
deadline, and the process is killed in a finally. The framing is written here, not borrowed from
pygls, so that the test checks what goes over the wire.
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

DEADLINE = 20.0  # seconds for any one answer; a healthy server answers in well under one

TINY = """\
# a small network for the language server's tests
network tiny
input 3x32x32

block unit(K, S=1) {
    conv K=K F=3 S=S P=1   # the block's one conv
    relu
}

stem: conv K=8 F=4 S=3
unit(16) x2
pool max F=2
flatten
fc 10
"""


class Client:
    """The editor's side: Content-Length frames out, a reader thread that sorts what comes back."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.next_id = proc, 0
        self.responses: dict[int, dict] = {}
        self.notifications: queue.Queue = queue.Queue()
        self.arrived = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stream = self.proc.stdout
        while True:
            headers = {}
            while (line := stream.readline()) not in (b"\r\n", b""):
                key, _, value = line.decode("ascii").partition(":")
                headers[key.strip().lower()] = value.strip()
            if not headers:
                return  # the server closed its output
            message = json.loads(stream.read(int(headers["content-length"])))
            if "id" in message and "method" not in message:
                with self.arrived:
                    self.responses[message["id"]] = message
                    self.arrived.notify_all()
            elif "method" in message and "id" not in message:
                self.notifications.put(message)
            else:  # a request from the server (e.g. workspace/configuration): answer it with nothing
                self._send({"jsonrpc": "2.0", "id": message["id"], "result": None})

    def _send(self, message: dict) -> None:
        body = json.dumps(message).encode("utf-8")
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def notify(self, method: str, params: dict | None = None) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def request(self, method: str, params: dict | None = None):
        self.next_id += 1
        ident = self.next_id
        self._send({"jsonrpc": "2.0", "id": ident, "method": method, "params": params})
        with self.arrived:
            if not self.arrived.wait_for(lambda: ident in self.responses, timeout=DEADLINE):
                raise TimeoutError(f"no answer to {method} within {DEADLINE} s")
            answer = self.responses.pop(ident)
        assert "error" not in answer, answer["error"]
        return answer["result"]

    def diagnostics(self, uri: str, version: int) -> list[dict]:
        """The next publishDiagnostics for `uri` at `version`, skipping older ones and other messages."""
        end = time.monotonic() + DEADLINE
        while (left := end - time.monotonic()) > 0:
            try:
                message = self.notifications.get(timeout=left)
            except queue.Empty:
                break
            params = message["params"]
            if message["method"] == "textDocument/publishDiagnostics" and params["uri"] == uri and params.get("version") == version:
                return params["diagnostics"]
        raise TimeoutError(f"no diagnostics for {uri} version {version} within {DEADLINE} s")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("lsp")
    (folder / "tiny.cnn").write_text(TINY)
    return folder


@pytest.fixture(scope="module")
def client(files):
    proc = subprocess.Popen(
        [sys.executable, "-m", "specc", "lsp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        editor = Client(proc)
        capabilities = {"general": {"positionEncodings": ["utf-16"]}, "textDocument": {"hover": {"contentFormat": ["markdown"]}}}
        result = editor.request("initialize", {"processId": None, "rootUri": files.as_uri(), "capabilities": capabilities})
        editor.capabilities = result["capabilities"]
        editor.notify("initialized", {})
        uri = (files / "tiny.cnn").as_uri()
        editor.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "specc", "version": 1, "text": TINY}})
        editor.opened = editor.diagnostics(uri, 1)
        yield editor
    finally:
        proc.kill()
        proc.wait(timeout=DEADLINE)


def cli_diagnostics(path: Path) -> list[tuple]:
    """What `specc check` prints, as (severity, message, hint, (line, column, end column)), 0-based, notes after.

    Read from the rendered text: the header gives the start, the caret line's `^~~` the width.
    """
    done = subprocess.run([sys.executable, "-m", "specc", "check", str(path)], capture_output=True, text=True, timeout=60)
    out, lines = [], done.stderr.splitlines()
    for i, line in enumerate(lines):
        head = re.match(rf"{re.escape(str(path))}:(\d+):(\d+): (error|warning|note): (.*)$", line)
        if not head:
            continue
        caret = lines[i + 2]
        width = len(caret) - len(caret.rstrip("~")) + 1
        hint = lines[i + 3].removeprefix("  hint: ") if i + 3 < len(lines) and lines[i + 3].startswith("  hint: ") else None
        row, column = int(head[1]) - 1, int(head[2]) - 1
        out.append((head[3], head[4], hint, (row, column, column + width)))
    return out


def lsp_ranges(diagnostics: list[dict]) -> list[tuple]:
    """The same tuples from the server's diagnostics, each followed by its related information as notes."""
    severity = {1: "error", 2: "warning"}
    out = []
    for d in diagnostics:
        message, _, hint = d["message"].partition("\nhint: ")
        start, end = d["range"]["start"], d["range"]["end"]
        assert start["line"] == end["line"]
        out.append((severity[d["severity"]], message, hint or None, (start["line"], start["character"], end["character"])))
        for info in d.get("relatedInformation") or []:
            r = info["location"]["range"]
            out.append(("note", info["message"], None, (r["start"]["line"], r["start"]["character"], r["end"]["character"])))
    return out


def test_the_server_announces_what_it_answers(client):
    wanted = ("hoverProvider", "inlayHintProvider", "completionProvider", "definitionProvider", "documentSymbolProvider")
    assert all(client.capabilities.get(name) for name in wanted + ("documentFormattingProvider",))
    assert client.capabilities["positionEncoding"] == "utf-16"
    assert client.capabilities["textDocumentSync"]["change"] == 2  # incremental: an edit sends the changed line only


def test_diagnostics_on_open_are_check_s_warnings(client, files):
    (warning,) = client.opened
    assert warning["range"] == {"start": {"line": 9, "character": 6}, "end": {"line": 9, "character": 10}}
    assert warning["severity"] == 2
    assert warning["message"].startswith("conv does not tile its input: (32 − 4 + 2·0)/3 + 1 = 10.3333 → 10")
    assert lsp_ranges(client.opened) == cli_diagnostics(files / "tiny.cnn")


def test_diagnostics_follow_each_change(client, files):
    """An edit of one line (incremental sync) makes an error with a call-chain note; undoing it clears it."""
    text = TINY.replace("unit(16) x2", "unit(0) x2")
    (files / "bad.cnn").write_text(text)
    uri = (files / "bad.cnn").as_uri()
    client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "specc", "version": 1, "text": TINY}})
    assert len(client.diagnostics(uri, 1)) == 1
    edit = {"range": {"start": {"line": 10, "character": 5}, "end": {"line": 10, "character": 7}}, "text": "0"}
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [edit]})
    (error,) = client.diagnostics(uri, 2)
    assert error["range"] == {"start": {"line": 10, "character": 5}, "end": {"line": 10, "character": 6}}
    assert error["message"] == "conv K must be at least 1, got 0\nhint: K: number of filters; e.g. K=16"
    (note,) = error["relatedInformation"]
    assert note["message"] == "block 'unit' passes it to conv as K here"
    assert note["location"] == {"uri": uri, "range": {"start": {"line": 5, "character": 9}, "end": {"line": 5, "character": 12}}}
    assert lsp_ranges([error]) == cli_diagnostics(files / "bad.cnn")
    # While the line has an error, the others keep their shapes: checked as if it were not there, and said so.
    at = {"textDocument": {"uri": uri}, "range": {"start": {"line": 9, "character": 0}, "end": {"line": 11, "character": 0}}}
    hints = client.request("textDocument/inlayHint", at)
    assert [(h["position"]["line"], h["label"]) for h in hints] == [(9, "→ 8×10×10"), (11, "→ 8×5×5")]
    assert hints[0]["tooltip"] == "figures as if line 11 were left out, until the errors there are fixed"
    undo = {"range": {"start": {"line": 10, "character": 5}, "end": {"line": 10, "character": 6}}, "text": "16"}
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 3}, "contentChanges": [undo]})
    assert lsp_ranges(client.diagnostics(uri, 3)) == lsp_ranges(client.opened)


def test_diagnostics_of_a_syntax_error(client, files):
    uri = (files / "syntax.cnn").as_uri()
    text = TINY.replace("pool max F=2", "pool max F=")
    (files / "syntax.cnn").write_text(text)
    client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "specc", "version": 1, "text": text}})
    diagnostics = client.diagnostics(uri, 1)
    assert diagnostics and diagnostics[0]["range"]["start"]["line"] == 11
    assert lsp_ranges(diagnostics) == cli_diagnostics(files / "syntax.cnn")


def test_diagnostic_columns_are_counted_in_utf_16_as_the_client_asked(client, files):
    """An emoji is one character to specc and two UTF-16 units to the editor: the caret after it moves one on."""
    uri = (files / "emoji.cnn").as_uri()
    text = TINY.replace("fc 10\n", 'fc 10 note="😀" K=0\n')
    client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "specc", "version": 1, "text": text}})
    first, second = client.diagnostics(uri, 1)
    assert first["range"]["start"] == {"line": 13, "character": 6}  # before the emoji: as specc check's column 7
    assert second["message"].startswith("K is given twice")
    assert second["range"] == {"start": {"line": 13, "character": 16}, "end": {"line": 13, "character": 17}}  # check's column 16


def _hover(client, files, line: int, character: int) -> str | None:
    at = {"textDocument": {"uri": (files / "tiny.cnn").as_uri()}, "position": {"line": line, "character": character}}
    answer = client.request("textDocument/hover", at)
    return answer and answer["contents"]["value"]


def test_hover_on_a_layer_shows_its_figures(client, files):
    assert _hover(client, files, 9, 8) == (
        "**stem** `conv` → **8×10×10**\n\n"
        "(W − F + 2P)/S + 1 = (32 − 4 + 2·0)/3 + 1 = 10.3333 → 10\n\n"
        "params 392 · MACs 39,200 · receptive field 4"
    )
    assert _hover(client, files, 2, 3) is None  # the input line is no layer
    assert _hover(client, files, 4, 8) == "```specc\nblock unit(K, S=1)\n```\n\ncalled on line 11"


def test_hover_in_a_block_shows_every_use(client, files):
    assert _hover(client, files, 5, 6) == (
        "**conv**, run 2 times:\n\n"
        "- `unit1.0.conv1` conv → 16×10×10: (10 − 3 + 2·1)/1 + 1 = 10 · 1,168 params · 116,800 MACs · RF 10\n"
        "- `unit1.1.conv1` conv → 16×10×10: (10 − 3 + 2·1)/1 + 1 = 10 · 2,320 params · 232,000 MACs · RF 16"
    )


def test_hover_on_a_block_call_shows_signature_and_expansion(client, files):
    assert _hover(client, files, 10, 1) == (
        "```specc\nblock unit(K, S=1)\n```\n\n"
        "**unit1** `x2` → **16×10×10**\n\n"
        "params 3,488 · MACs 348,800 · receptive field 16\n\n"
        "expands to 4 layers:\n\n"
        "- `unit1.0` unit(16) → 16×10×10\n"
        "  - `unit1.0.conv1` conv → 16×10×10\n"
        "  - `unit1.0.relu1` relu → 16×10×10\n"
        "- `unit1.1` unit(16) → 16×10×10\n"
        "  - `unit1.1.conv1` conv → 16×10×10\n"
        "  - `unit1.1.relu1` relu → 16×10×10"
    )


def test_inlay_hints_end_each_layer_line_with_its_shape(client, files):
    at = {
        "textDocument": {"uri": (files / "tiny.cnn").as_uri()},
        "range": {"start": {"line": 0, "character": 0}, "end": {"line": 14, "character": 0}},
    }
    hints = [(h["position"]["line"], h["position"]["character"], h["label"]) for h in client.request("textDocument/inlayHint", at)]
    assert hints == [
        (5, 24, "→ 16×10×10"),  # before the comment
        (6, 8, "→ 16×10×10"),
        (9, 22, "→ 8×10×10"),
        (10, 11, "→ 16×10×10"),
        (11, 12, "→ 16×5×5"),
        (12, 7, "→ 400"),
        (13, 5, "→ 10"),
    ]


# A file being typed; the cursor sits after the blank that ends some lines.
EDITING = "\n".join(
    [
        "network edit",
        "input 3x32x32",
        "block unit(K, S=1) {",
        "    conv K=K F=3 ",
        "}",
        "conv K=8 P=",
        "unit(16, ",
        "pool ",
        "co",
        "init ",
        "",
    ]
)


def _complete(client, uri: str, line: int, character: int) -> dict[str, dict]:
    at = {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}}
    return {item["label"]: item for item in client.request("textDocument/completion", at)["items"]}


def test_completion_of_kinds_blocks_arguments_and_values(client, files):
    """Completion works in a file being typed, syntax errors and all."""
    from specc.layers import KINDS

    uri = (files / "edit.cnn").as_uri()
    client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "specc", "version": 1, "text": EDITING}})
    client.diagnostics(uri, 1)
    starts = _complete(client, uri, 8, 2)  # `co`
    assert set(starts) == set(KINDS) | {"unit", "residual", "concat", "seq", "gate", "network", "input", "init", "train", "block"}
    assert starts["unit"]["detail"] == "block unit(K, S=1)" and starts["unit"]["insertText"] == "unit("
    assert starts["conv"]["documentation"] == KINDS["conv"].help
    arguments = _complete(client, uri, 3, 17)  # `    conv K=K F=3 ` inside the block
    assert set(arguments) == {"S", "P", "dilation", "groups", "bias"}
    assert arguments["bias"]["detail"] == "bias: bool, default true"
    assert arguments["bias"]["documentation"] == "add a learned bias"
    assert arguments["P"]["insertText"] == "P="
    assert set(_complete(client, uri, 5, 11)) == {"same", "valid", "full"}  # `conv K=8 P=`
    params = _complete(client, uri, 6, 9)  # `unit(16, `
    assert set(params) == {"K", "S"} and params["S"]["detail"] == "S, default 1"
    assert set(_complete(client, uri, 9, 5)) == {"default", "kaiming", "xavier"}  # `init `
    pool = _complete(client, uri, 7, 5)  # `pool `
    assert {"max", "avg", "global", "F", "S", "P"} <= set(pool)


def test_definition_of_a_block(client, files):
    at = {"textDocument": {"uri": (files / "tiny.cnn").as_uri()}, "position": {"line": 10, "character": 2}}
    assert client.request("textDocument/definition", at) == {
        "uri": (files / "tiny.cnn").as_uri(),
        "range": {"start": {"line": 4, "character": 6}, "end": {"line": 4, "character": 10}},
    }
    at["position"] = {"line": 12, "character": 2}  # `flatten` is a kind, defined nowhere in the file
    assert client.request("textDocument/definition", at) is None


def test_document_symbols_are_blocks_and_named_layers(client, files):
    symbols = client.request("textDocument/documentSymbol", {"textDocument": {"uri": (files / "tiny.cnn").as_uri()}})
    assert [(s["name"], s["kind"], s["range"]["start"]["line"], s["range"]["end"]["line"]) for s in symbols] == [
        ("unit", 12, 4, 7),  # Function, the block from its name to its closing brace
        ("stem", 8, 9, 9),  # Field, a named layer
    ]
    assert symbols[0]["selectionRange"] == {"start": {"line": 4, "character": 6}, "end": {"line": 4, "character": 10}}


def test_formatting_goes_through_specc_fmt(client, files):
    from specc.fmt import format_text

    messy = TINY.replace("stem: conv K=8 F=4 S=3", "stem:   conv  K=8   F=4 S=3")
    uri = (files / "messy.cnn").as_uri()
    client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "specc", "version": 1, "text": messy}})
    client.diagnostics(uri, 1)
    edits = client.request("textDocument/formatting", {"textDocument": {"uri": uri}, "options": {"tabSize": 4, "insertSpaces": True}})
    assert [e["newText"] for e in edits] == [format_text(messy)]
    assert edits[0]["range"]["start"] == {"line": 0, "character": 0}
    # a file with a syntax error is left as it is: its diagnostics say why
    syntax = {"textDocument": {"uri": (files / "syntax.cnn").as_uri()}, "options": {"tabSize": 4, "insertSpaces": True}}
    assert client.request("textDocument/formatting", syntax) is None


def test_shutdown_then_exit_ends_the_server(client):
    assert client.request("shutdown") is None
    client.notify("exit")
    assert client.proc.wait(timeout=DEADLINE) == 0
