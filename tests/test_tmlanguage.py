"""The TextMate grammar: valid JSON, up to date with the language, and right on every spec of the zoo.

A TextMate engine tokenises a line by trying every `match` rule at the current position and taking
the match that starts first (the earlier rule on a tie); `tokens` below does that with Python's re,
which reads the grammar's regular expressions as Oniguruma does (the grammar keeps to their common
part). The token of every statement's word is compared with what the parser says that word is.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from specc.expand import GROUP_FIELDS, KEYWORDS
from specc.layers import KINDS
from specc.lsp.outline import all_statements
from specc.parse import parse

ROOT = Path(__file__).resolve().parent.parent
GRAMMAR = ROOT / "grammar" / "specc.tmLanguage.json"
ZOO = sorted((ROOT / "specs").rglob("*.cnn"))
LAYER, GROUP, CALL, BLOCK, LABEL = (
    "support.function.layer.specc",
    "keyword.other.group.specc",
    "entity.name.function.call.specc",
    "entity.name.function.specc",
    "entity.name.tag.label.specc",
)


def _generator():
    spec = importlib.util.spec_from_file_location("write_tmlanguage", ROOT / "grammar" / "write_tmlanguage.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RULES = [(re.compile(rule["match"]), rule) for rule in json.loads(GRAMMAR.read_text(encoding="utf-8"))["patterns"]]


def tokens(line: str) -> dict[tuple[int, int], str]:
    """(start, end) -> scope of each scoped piece of `line`, as a TextMate engine assigns them."""
    out, at = {}, 0
    while at < len(line):
        found = [(m.start(), i, m) for i, (pattern, _) in enumerate(RULES) if (m := pattern.search(line, at))]
        if not found:
            break
        start, i, match = min(found, key=lambda f: (f[0], f[1]))
        rule = RULES[i][1]
        if "name" in rule:
            out[match.span()] = rule["name"]
        for group, capture in rule.get("captures", {}).items():
            if match.group(int(group)) is not None:
                out[match.span(int(group))] = capture["name"]
        at = max(match.end(), start + 1)
    return out


def test_the_grammar_is_valid_json_and_up_to_date():
    written = _generator().text()
    for target in (GRAMMAR, ROOT / "editors" / "vscode" / "syntaxes" / "specc.tmLanguage.json"):
        assert json.loads(target.read_text(encoding="utf-8"))["scopeName"] == "source.specc"
        assert target.read_text(encoding="utf-8") == written, f"{target} is stale: run `python grammar/write_tmlanguage.py`"


def test_its_layer_keywords_are_exactly_the_language_s_kinds():
    vocabulary = set(KINDS) | {a for kind in KINDS.values() for a in kind.aliases} | set(GROUP_FIELDS) | set(KEYWORDS) | {"basic"}
    assert {word for word in vocabulary if tokens(f"stem: {word} x").get((6, 6 + len(word))) == LAYER} == set(KINDS)
    assert {word for word in vocabulary if tokens(f"    {word}").get((4, 4 + len(word))) == LAYER} == set(KINDS)
    assert {w for w in vocabulary if tokens(f"    {w} {{").get((4, 4 + len(w))) == GROUP} == set(GROUP_FIELDS)


def test_the_lark_grammar_s_keywords_are_highlighted():
    lark = (ROOT / "grammar" / "specc.lark").read_text(encoding="utf-8")
    keywords = set(re.findall(r'^\w+: (?:\w+ )?"([a-z]+)"', lark, re.MULTILINE)) | set(
        re.findall(r'^[A-Z]+: "([a-z]+)"', lark, re.MULTILINE)
    )
    assert keywords == set(KEYWORDS)
    for word in keywords:
        assert tokens(f"{word} x")[(0, len(word))].startswith("keyword.control.")


@pytest.mark.parametrize("path", ZOO, ids=lambda p: str(p.relative_to(ROOT / "specs")))
def test_every_spec_of_the_zoo_is_tokenised_as_the_parser_reads_it(path):
    text = path.read_text(encoding="utf-8")
    spec = parse(text, str(path))
    lines = text.split("\n")
    scoped = [tokens(line) for line in lines]

    def scope_of(span) -> str | None:
        return scoped[span.line - 1].get((span.column - 1, span.end_column - 1))

    blocks = {b.name.text for b in spec.blocks}
    for b in spec.blocks:
        assert scope_of(b.name.span) == BLOCK
    for st in all_statements(spec):
        word = st.name.text
        expected = CALL if word in blocks else LAYER if word in KINDS else GROUP
        assert scope_of(st.name.span) == expected, f"{path.name}:{st.name.span.line}: {word}"
        if st.label is not None:
            assert scope_of(st.label.span) == LABEL
    for number, line in enumerate(lines, 1):
        layers = {line[a:b] for (a, b), scope in scoped[number - 1].items() if scope == LAYER}
        assert layers <= set(KINDS), f"{path.name}:{number}"
        if "#" in line and '"' not in line:
            comment = (line.index("#"), len(line))
            assert scoped[number - 1].get(comment) == "comment.line.number-sign.specc", f"{path.name}:{number}"


def test_the_vs_code_extension_folder_holds_together():
    folder = ROOT / "editors" / "vscode"
    package = json.loads((folder / "package.json").read_text(encoding="utf-8"))
    (language,) = package["contributes"]["languages"]
    (grammar,) = package["contributes"]["grammars"]
    assert language["extensions"] == [".cnn"] and grammar["language"] == language["id"] == "specc"
    assert (folder / grammar["path"]).is_file() and (folder / package["main"]).is_file()
    configuration = json.loads((folder / language["configuration"]).read_text(encoding="utf-8"))
    assert configuration["comments"]["lineComment"] == "#"  # specc.lark's COMMENT
    assert package["contributes"]["configuration"]["properties"]["specc.command"]["default"] == ["specc", "lsp"]
    node = shutil.which("node")
    if node:  # syntax only: vscode-languageclient is installed by npm, not here
        done = subprocess.run([node, "--check", str(folder / "extension.js")], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
