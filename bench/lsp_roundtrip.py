"""How soon an editor sees the diagnostics of a keystroke on ResNet-50, through `specc lsp`.

One server is started as an editor starts it; specs/resnet50.cnn is opened, then edited N times
(incremental didChange of one line: a new class count, a shape error, a syntax error, in turn).
Each round trip is timed from writing didChange to reading the publishDiagnostics of that version.
The same texts are then checked in process (specc.loads(...).check()), so the ratio shows what the
protocol, pygls and the server add to the check itself.

    python bench/lsp_roundtrip.py [--edits 60]
"""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESNET50 = ROOT / "specs" / "resnet50.cnn"
DEADLINE = 30.0  # seconds for one answer: a server that takes longer is broken, not slow


def edits(text: str, n: int) -> list[tuple[int, str]]:
    """(0-based line, new text of that line) for each edit: valid, a shape error, a syntax error, in turn."""
    lines = text.split("\n")
    fc = next(i for i, line in enumerate(lines) if line.startswith("fc "))
    pool = next(i for i, line in enumerate(lines) if line.startswith("pool max"))
    kinds = [(fc, lambda i: f"fc {1000 + i}"), (pool, lambda i: f"pool max F={300 + i} S=2 P=1"), (fc, lambda i: f"fc {i} =")]
    out = []
    for i in range(n):
        line, new = kinds[i % len(kinds)]
        out.append((line, new(i)))
    return out


class Server:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-m", "specc", "lsp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.messages: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            headers = {}
            while (line := self.proc.stdout.readline()) not in (b"\r\n", b""):
                key, _, value = line.decode("ascii").partition(":")
                headers[key.strip().lower()] = value.strip()
            if not headers:
                return
            self.messages.put(json.loads(self.proc.stdout.read(int(headers["content-length"]))))

    def send(self, message: dict) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def wait_for(self, matches) -> dict:
        end = time.monotonic() + DEADLINE
        while True:
            message = self.messages.get(timeout=max(end - time.monotonic(), 0.001))  # queue.Empty past the deadline
            if matches(message):
                return message


def round_trips(uri: str, text: str, changes: list[tuple[int, str]]) -> tuple[list[float], list[str]]:
    """Seconds from each didChange to its diagnostics, and the texts the server checked."""
    server, texts, times = Server(), [], []
    try:
        server.send({"id": 1, "method": "initialize", "params": {"processId": None, "rootUri": None, "capabilities": {}}})
        server.wait_for(lambda m: m.get("id") == 1)
        server.send({"method": "initialized", "params": {}})
        server.send(
            {"method": "textDocument/didOpen", "params": {"textDocument": {"uri": uri, "languageId": "specc", "version": 0, "text": text}}}
        )
        server.wait_for(lambda m: m.get("method") == "textDocument/publishDiagnostics")
        lines = text.split("\n")
        for version, (line, new) in enumerate(changes, 1):
            change = {"range": {"start": {"line": line, "character": 0}, "end": {"line": line, "character": len(lines[line])}}, "text": new}
            lines[line] = new
            texts.append("\n".join(lines))
            start = time.perf_counter()
            server.send(
                {
                    "method": "textDocument/didChange",
                    "params": {"textDocument": {"uri": uri, "version": version}, "contentChanges": [change]},
                }
            )
            server.wait_for(lambda m, v=version: m.get("method") == "textDocument/publishDiagnostics" and m["params"].get("version") == v)
            times.append(time.perf_counter() - start)
        server.send({"id": 2, "method": "shutdown", "params": None})
        server.wait_for(lambda m: m.get("id") == 2)
        server.send({"method": "exit", "params": None})
        server.proc.wait(timeout=DEADLINE)
    finally:
        server.proc.kill()
    return times, texts


def in_process(texts: list[str]) -> list[float]:
    import specc

    specc.loads(texts[0], "resnet50.cnn")  # the grammar's tables and the kinds, loaded once as in the server
    times = []
    for text in texts:
        start = time.perf_counter()
        try:
            specc.loads(text, "resnet50.cnn").check()
        except specc.SpeccError:
            pass
        times.append(time.perf_counter() - start)
    return times


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=60)
    n = parser.parse_args().edits
    text = RESNET50.read_text(encoding="utf-8")
    server, texts = round_trips(RESNET50.as_uri(), text, edits(text, n))
    local = in_process(texts)
    print(f"ResNet-50, {n} edits (valid, shape error, syntax error in turn)")
    print(f"  didChange -> publishDiagnostics   median {statistics.median(server) * 1e3:7.1f} ms   p90 {p90(server) * 1e3:7.1f} ms")
    print(f"  check in process, same texts      median {statistics.median(local) * 1e3:7.1f} ms   p90 {p90(local) * 1e3:7.1f} ms")
    print(f"  ratio of medians (server / check)  {statistics.median(server) / statistics.median(local):.2f}")


if __name__ == "__main__":
    main()
