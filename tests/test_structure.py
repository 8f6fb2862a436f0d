"""How specc's code is laid out: modules of a readable size, and objects whose state their constructor makes.

Both are read from the source (no import), so they cost milliseconds. A known offender that
another change is fixing stands in an explicit list; the test also fails once a listed file no
longer offends, so the lists only shrink.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "specc"
MAX_LINES = 400
CONSTRUCTORS = {"__init__", "__post_init__"}

# Being split elsewhere (expand.py: statements and binding stay, naming and argument conversion move out).
LONG_MODULES = {"expand.py"}
# Class -> attributes it still makes outside its constructor, while that change is under way.
STATE_OUTSIDE_CONSTRUCTOR: dict[str, set[str]] = {}


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@dataclass
class ClassState:
    """What one class's methods assign to `self.<name>`: in its constructor, and elsewhere (with where)."""

    name: str
    bases: list[str]  # the base classes' simple names
    made: set[str]  # by its constructor, or declared as a dataclass field
    elsewhere: dict[str, str]  # attribute -> "file:line method"


def class_states() -> dict[str, list[ClassState]]:
    found: dict[str, list[ClassState]] = {}
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                found.setdefault(node.name, []).append(_state(node, path.relative_to(PACKAGE)))
    return found


def _state(cls: ast.ClassDef, path: Path) -> ClassState:
    bases = [b.attr if isinstance(b, ast.Attribute) else b.id for b in cls.bases if isinstance(b, ast.Attribute | ast.Name)]
    state = ClassState(cls.name, bases, _dataclass_fields(cls), {})
    for method in cls.body:
        if not isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef) or not method.args.args:
            continue
        me = method.args.args[0].arg
        for attribute, line in _assigned(method, me):
            if method.name in CONSTRUCTORS:
                state.made.add(attribute)
            else:
                state.elsewhere.setdefault(attribute, f"{path}:{line} {method.name}")
    return state


def _dataclass_fields(cls: ast.ClassDef) -> set[str]:
    decorators = {
        d.id if isinstance(d, ast.Name) else getattr(d.func, "id", "") for d in cls.decorator_list if not isinstance(d, ast.Attribute)
    }
    if "dataclass" not in decorators:
        return set()
    return {s.target.id for s in cls.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}


def _assigned(method: ast.AST, me: str):
    """(attribute, line) for every `me.attribute = ...`, `+=` or annotated assignment in `method`, tuples unpacked."""
    for node in ast.walk(method):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AugAssign | ast.AnnAssign) else []
        for target in targets:
            for part in ast.walk(target):
                if isinstance(part, ast.Attribute) and isinstance(part.value, ast.Name) and part.value.id == me:
                    yield part.attr, part.lineno


def made_by_family(name: str, classes: dict[str, list[ClassState]]) -> set[str] | None:
    """What the constructors of `name`, its bases and the classes built on it make; None where a base is not specc's.

    Subclasses count so that a mixin (rundir.RunFiles) may set what the class that uses it makes.
    """
    made: set[str] = set()
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if current not in classes:
            return None  # a library's class: what its constructor makes is not read here
        for state in classes[current]:
            made |= state.made
            todo += [base for base in state.bases if base not in ("object", "Protocol", "Generic")]
    for other, states in classes.items():
        if any(name in state.bases for state in states):
            made |= made_by_family(other, classes) or set()
    return made


def test_no_module_is_longer_than_a_reader_takes_in():
    long = {str(path.relative_to(PACKAGE)): n for path in modules() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert set(long) <= LONG_MODULES, f"over {MAX_LINES} lines: split along a seam: {long}"
    assert set(long) >= LONG_MODULES, f"listed as too long but no longer are: {LONG_MODULES - set(long)}: take them off the list"


def test_every_attribute_is_made_by_the_constructor():
    """Methods may change an object's state, but its constructor makes all of it: a reader finds it in one place."""
    classes = class_states()
    offences: dict[str, set[str]] = {}
    places = []
    for name, states in classes.items():
        made = made_by_family(name, classes)
        if made is None:
            continue
        for state in states:
            for attribute, where in state.elsewhere.items():
                if attribute not in made:
                    offences.setdefault(name, set()).add(attribute)
                    places.append(f"{where}: {name}.{attribute}")
    assert offences == STATE_OUTSIDE_CONSTRUCTOR, "made outside the constructor:\n" + "\n".join(places)


def test_the_attribute_walk_sees_what_it_looks_for(tmp_path):
    """The walk itself: a made-later attribute, a tuple target and an augmented assignment are seen; a local is not."""
    source = (
        "class A:\n"
        "    def __init__(self):\n"
        "        self.n = 0\n"
        "    def later(self):\n"
        "        self.n += 1\n"
        "        self.late, self.n = 1, 2\n"
        "        total = self.n\n"
    )
    (state,) = [_state(node, Path("a.py")) for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ClassDef)]
    assert state.made == {"n"} and set(state.elsewhere) == {"n", "late"}
    assert made_by_family("A", {"A": [state]}) == {"n"}
    assert made_by_family("B", {"A": [state]}) is None


def test_the_backends_import_neither_the_api_nor_a_runner():
    """A backend converts an IR or a module; the commands that load specs and weights are runners over it."""
    for path in sorted((PACKAGE / "backends").glob("*.py")):
        assert not {name for name in imported_names(path) if {"api", "runners"} & set(name.split("."))}, path.name


def imported_names(path: Path) -> set[str]:
    """Every module a file imports, dotted; `from ..x import y` gives x and x.y, `from .. import y` gives y."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            names |= {base} | {f"{base}.{alias.name}".lstrip(".") for alias in node.names}
    return names - {""}
