"""Damage real specs ten thousand ways and count how specc answers.

Beyond the hypothesis test in tests/test_fuzz.py (a few hundred small edits inside the suite),
this script throws the kinds of damage a hostile tester or a broken editor produces at every spec
in specs/ and tests/errors/: every kind of token replaced, deleted or doubled; truncation at any
byte; groups nested hundreds deep; huge repeats, sizes and numbers; control characters and stray
bytes. Each case is parsed, expanded, checked, and its report or its diagnostics drawn, as the
CLI would. A case ends one of four ways:

    accepted   the damaged spec is still a network (its table and JSON were drawn)
    refused    a SpeccError, rendered, every diagnostic with a hint
    crash      any other exception: a traceback a user would see (a bug)
    hang       no answer within --timeout seconds (a bug: check must stay linear)

Workers run in their own processes, so a hang is killed and counted, not waited for.
Crashes and hangs are written to --save for replay (`specc check FILE`).

    python bench/fuzz_specs.py [--cases 10000] [--seed 0] [--workers 2] [--timeout 10] [--save DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import queue
import random
import re
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKEN = re.compile(r"[A-Za-z_]\w*|\d+(?:\.\d+)?(?:e-?\d+)?|\"[^\"\n]*\"|\S")

KEYWORDS = "network input init train block residual concat seq freeze shortcut identity project auto x2 x0 x-1".split()
KINDS = "conv pool batchnorm dropout flatten fc relu leakyrelu elu gelu silu sigmoid tanh maxout softmax".split()
ARGS = "K F S P dilation groups bias p slope alpha eps momentum mode global max avg same valid full true false".split()
NUMBERS = ["0", "-1", "1", "2", "3", "7", "0.5", "1e-3", "1e9", "1e999", "-0", "2.0", "9" * 30, "1" + "0" * 5000, "nan", "inf"]
PUNCT = list("{}()=,:-*/+#\\\"x;'[]<>%^&|~`$@!?.") + ["**", "//", "=="]
ODD = ["\t", "\r", "\x00", "\x0c", "\x1b[2J", "\u2028", "\ufeff", "é", "×", "😀", "\ud7ff", " " * 200]
POOL = KEYWORDS + KINDS + ARGS + NUMBERS + PUNCT + ODD


def seeds() -> dict[str, str]:
    files = sorted((ROOT / "specs").rglob("*.cnn")) + sorted((ROOT / "tests" / "errors").glob("*.cnn"))
    return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in files}


# ---- mutations: each takes the text and a Random, returns new text ------------------------


def replace_token(text: str, rnd: random.Random) -> str:
    tokens = list(TOKEN.finditer(text))
    if not tokens:
        return text + rnd.choice(POOL)
    t = rnd.choice(tokens)
    return text[: t.start()] + rnd.choice(POOL) + text[t.end() :]


def delete_token(text: str, rnd: random.Random) -> str:
    tokens = list(TOKEN.finditer(text))
    if not tokens:
        return text
    t = rnd.choice(tokens)
    return text[: t.start()] + text[t.end() :]


def double_token(text: str, rnd: random.Random) -> str:
    tokens = list(TOKEN.finditer(text))
    if not tokens:
        return text
    t = rnd.choice(tokens)
    return text[: t.end()] + " " + t.group() * rnd.choice([1, 2, 50]) + text[t.end() :]


def truncate(text: str, rnd: random.Random) -> str:
    return text[: rnd.randrange(len(text) + 1)]


def lines_edit(text: str, rnd: random.Random) -> str:
    lines = text.split("\n")
    i, j = rnd.randrange(len(lines)), rnd.randrange(len(lines))
    edit = rnd.choice(["delete", "duplicate", "swap", "join"])
    if edit == "delete":
        del lines[i]
    elif edit == "duplicate":
        lines[i:i] = [lines[i]] * rnd.choice([1, 2, 500])
    elif edit == "swap":
        lines[i], lines[j] = lines[j], lines[i]
    elif i + 1 < len(lines):
        lines[i : i + 2] = [lines[i] + " " + lines[i + 1]]
    return "\n".join(lines)


def nest(text: str, rnd: random.Random) -> str:
    """Wrap a run of lines in groups, up to hundreds deep, sometimes unbalanced."""
    lines = text.split("\n")
    i = rnd.randrange(len(lines))
    j = rnd.randrange(i, len(lines))
    depth = rnd.choice([1, 2, 10, 300])
    opener = rnd.choice(["seq {", "residual {", "concat {", "residual shortcut=auto {", "b: seq {"])
    closers = depth if rnd.random() < 0.8 else depth - 1
    return "\n".join(lines[:i] + [opener] * depth + lines[i : j + 1] + ["}"] * closers + lines[j + 1 :])


def huge(text: str, rnd: random.Random) -> str:
    """A huge repeat, size or number where a small one was."""
    lines = text.split("\n")
    i = rnd.randrange(len(lines))
    choice = rnd.choice(["repeat", "number", "input"])
    if choice == "repeat":
        lines[i] += rnd.choice([" x100000", " x99999999999", " x" + "9" * 400, " x1000 x1000"])
    elif choice == "number":
        lines[i] = re.sub(r"\d+", lambda _: rnd.choice(NUMBERS[9:] + ["65536", "100000"]), lines[i], count=1)
    else:
        lines.insert(rnd.randrange(len(lines) + 1), f"input 3x{rnd.choice(['65536', '9' * 20, '1'])}x{rnd.choice(['8', '9' * 20])}")
    return "\n".join(lines)


def stray_bytes(text: str, rnd: random.Random) -> str:
    at = rnd.randrange(len(text) + 1)
    junk = "".join(chr(rnd.randrange(0, 0x3000)) for _ in range(rnd.randrange(1, 6)))
    junk = junk.encode("utf-8", "replace").decode("utf-8", "replace")
    return text[:at] + junk + text[at:]


def long_line(text: str, rnd: random.Random) -> str:
    """One line with thousands of bad arguments: diagnostics must stay capped."""
    word = rnd.choice(["relu ", "K ", "conv K=1 ", "= ", "F=3 "])
    return text + "\n" + word * rnd.choice([1000, 4000])


MUTATIONS = [replace_token, delete_token, double_token, truncate, lines_edit, nest, huge, stray_bytes, long_line]


def make_case(seed_texts: list[tuple[str, str]], index: int, seed: int) -> tuple[str, str, str]:
    rnd = random.Random(seed * 1_000_003 + index)
    name, text = rnd.choice(seed_texts)
    applied = []
    for _ in range(rnd.choice([1, 1, 2, 3])):
        mutation = rnd.choice(MUTATIONS)
        text = mutation(text, rnd) if text else rnd.choice(POOL)
        applied.append(mutation.__name__)
    return name, "+".join(applied), text


# ---- running one case ---------------------------------------------------------------------------


def run_case(text: str, strict: bool) -> str:
    """'accepted' or 'refused'; anything else raises, which the worker reports as a crash."""
    from rich.console import Console

    import specc
    from specc import report as views
    from specc.errors import SpeccError

    try:
        report = specc.loads(text, "fuzz.cnn").check(strict=strict)
    except SpeccError as err:
        err.render()
        missing = [d.message for d in err.diagnostics if not d.hint]
        if missing:
            raise AssertionError(f"diagnostics without a hint: {missing[:3]}") from None
        return "refused"
    json.dumps(views.to_json(report))
    Console(file=io.StringIO(), width=120).print(views.table(report), views.totals(report))
    return "accepted"


def worker(tasks: mp.Queue, results: mp.Queue) -> None:
    sys.setrecursionlimit(10_000)
    import specc  # noqa: F401  (imported once, before the clock starts for a case)

    while True:
        item = tasks.get()
        if item is None:
            return
        index, text, strict = item
        results.put(("start", index, time.monotonic()))
        try:
            outcome, detail = run_case(text, strict), ""
        except BaseException as err:  # noqa: BLE001 - everything that is not a SpeccError is what we count
            outcome, detail = "crash", "".join(traceback.format_exception(err))[-2000:]
        results.put(("done", index, (outcome, detail)))


class Pool:
    """Worker processes fed from one queue; one that overruns its case is killed and replaced."""

    def __init__(self, size: int):
        self.tasks: mp.Queue = mp.Queue()
        self.results: mp.Queue = mp.Queue()
        self.size = size
        self.procs = [self._spawn() for _ in range(size)]

    def _spawn(self) -> mp.Process:
        proc = mp.Process(target=worker, args=(self.tasks, self.results), daemon=True)
        proc.start()
        return proc

    def replace_dead(self) -> None:
        self.procs = [p if p.is_alive() else self._spawn() for p in self.procs]

    def kill_all(self) -> None:
        for p in self.procs:
            p.kill()


def fuzz(cases: list[tuple[str, str, str]], workers: int, timeout: float, rnd: random.Random) -> list[tuple[int, str, str, float]]:
    """(index, outcome, detail, seconds) for every case."""
    outcomes: list[tuple[int, str, str, float]] = []
    pending = list(enumerate(cases))
    while pending:
        pool = Pool(workers)
        for index, (_, _, text) in pending:
            pool.tasks.put((index, text, rnd.random() < 0.2))
        started: dict[int, float] = {}
        finished: set[int] = set()
        hung: int | None = None
        while len(finished) < len(pending):
            try:
                event, index, payload = pool.results.get(timeout=0.5)
            except queue.Empty:
                late = [i for i, t in started.items() if i not in finished and time.monotonic() - t > timeout]
                if late:
                    hung = late[0]
                    break
                continue
            if event == "start":
                started[index] = payload
            else:
                finished.add(index)
                outcomes.append((index, *payload, time.monotonic() - started[index]))
        pool.kill_all()
        if hung is not None:
            outcomes.append((hung, "hang", f"no answer in {timeout:g} s", timeout))
            finished.add(hung)
        # Cases that were queued but never started (or were running beside the hang) go round again.
        pending = [(i, c) for i, c in pending if i not in finished]
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds a case may take before it counts as a hang")
    parser.add_argument("--save", type=Path, help="write crashing and hanging cases here")
    opts = parser.parse_args()

    seed_texts = sorted(seeds().items())
    cases = [make_case(seed_texts, i, opts.seed) for i in range(opts.cases)]
    print(f"{len(cases):,} cases from {len(seed_texts)} specs, {opts.workers} workers, {opts.timeout:g} s limit a case", flush=True)
    began = time.monotonic()
    outcomes = fuzz(cases, opts.workers, opts.timeout, random.Random(opts.seed))
    elapsed = time.monotonic() - began

    counts = Counter(outcome for _, outcome, _, _ in outcomes)
    by_mutation = Counter(cases[i][1].split("+")[0] for i, outcome, _, _ in outcomes if outcome in ("crash", "hang"))
    slowest = max(outcomes, key=lambda o: o[3])
    print(f"\n{'outcome':<10} {'cases':>7}")
    for outcome in ("accepted", "refused", "crash", "hang"):
        print(f"{outcome:<10} {counts[outcome]:>7,}")
    print(f"{'total':<10} {sum(counts.values()):>7,}   in {elapsed:.0f} s; slowest case {slowest[3]:.2f} s ({cases[slowest[0]][1]})")
    if by_mutation:
        print("bugs by first mutation: " + ", ".join(f"{m} {n}" for m, n in by_mutation.most_common()))

    bad = sorted((o for o in outcomes if o[1] in ("crash", "hang")), key=lambda o: o[0])
    for index, outcome, detail, _ in bad[:5]:
        name, applied, text = cases[index]
        print(f"\n--- case {index} ({outcome}, {applied} of {name}) ---\n{detail.strip().splitlines()[-1] if detail else ''}")
    if opts.save and bad:
        opts.save.mkdir(parents=True, exist_ok=True)
        for index, outcome, detail, _ in bad:
            (opts.save / f"{outcome}-{index}.cnn").write_text(cases[index][2], encoding="utf-8")
            (opts.save / f"{outcome}-{index}.txt").write_text(detail, encoding="utf-8")
        print(f"\n{len(bad)} cases written to {opts.save}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
