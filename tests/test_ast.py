"""The syntax tree's records: keyword construction, defaults, equality, immutability. No torch."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from specc import ast
from specc.errors import Span
from specc.parse import parse

ROOT = Path(__file__).resolve().parent.parent


def span(column: int, end: int, line: int = 2) -> Span:
    return Span(line, column, line, end)


def test_a_record_is_built_with_keywords_and_fills_its_defaults():
    arg = ast.Arg(span=span(1, 3), value=ast.Num(span=span(1, 3), value=16))
    assert (arg.key, arg.value.value, arg.value.kind) == (None, 16, "num")
    st = ast.Statement(span=span(1, 5), name=ast.Name(span=span(1, 5), text="relu"))
    assert (st.items, st.label, st.call_args, st.repeat, st.body) == ([], None, None, None, None)
    assert ast.Statement._fields[0] == "span" and ast.Spec._fields[-1] == "body"


def test_a_list_default_is_a_new_list_for_every_record():
    first, second = ast.Spec(), ast.Spec()
    first.body.append("a statement")
    assert second.body == [] and ast.Spec().body == []


def test_missing_and_unknown_fields_are_refused():
    with pytest.raises(TypeError, match="needs a value for 'value'"):
        ast.Num(span=span(1, 2))
    with pytest.raises(TypeError, match="has no field valu"):
        ast.Num(span=span(1, 2), value=1, valu=2)


def test_records_are_immutable():
    num = ast.Num(span=span(1, 2), value=1)
    with pytest.raises(AttributeError, match="immutable"):
        num.value = 2
    with pytest.raises(AttributeError, match="immutable"):
        del num.value
    assert num.value == 1


def test_equality_and_hash_follow_the_fields_and_the_class():
    a, b = ast.Ref(span=span(1, 2), name="same"), ast.Ref(span=span(1, 2), name="same")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != ast.Ref(span=span(1, 2), name="valid") and a != ast.Ref(span=span(1, 3), name="same")
    assert ast.Str(span=span(1, 2), value="x") != ast.Ref(span=span(1, 2), name="x")  # same fields' values, another kind
    with pytest.raises(TypeError):  # like a tuple holding a list
        hash(ast.BlockDef(span=span(1, 2), name=ast.Name(span=span(1, 2), text="b"), params=[], body=[]))


def test_repr_names_the_fields():
    assert repr(ast.Name(span=span(1, 2), text="conv")) == "Name(span=Span(line=2, column=1, end_line=2, end_column=2), text='conv')"


def test_a_parsed_tree_equals_the_tree_built_by_hand_and_survives_copy_and_pickle():
    spec = parse("network t\ninput 3x8x8\nconv K=2*8\n")
    left, right = ast.Num(span=span(8, 9, 3), value=2), ast.Num(span=span(10, 11, 3), value=8)
    product = ast.BinOp(span=span(8, 11, 3), op="*", left=left, right=right)
    key = ast.Name(span=span(6, 7, 3), text="K")
    statement = ast.Statement(
        span=span(1, 11, 3),
        name=ast.Name(span=span(1, 5, 3), text="conv"),
        items=[ast.Arg(span=span(6, 11, 3), key=key, value=product)],
    )
    assert spec.body == [statement] and spec.input_shape == (3, 8, 8)
    assert copy.deepcopy(spec) == spec and pickle.loads(pickle.dumps(spec)) == spec


def test_check_imports_neither_pydantic_nor_lark_nor_torch():
    """The syntax tree and the generated parser keep `specc check` light: see bench/check_speed.py."""
    code = (
        "import sys, specc\n"
        f"specc.load({str(ROOT / 'specs/resnet50.cnn')!r}).check()\n"
        "print(sorted(m for m in ('pydantic', 'lark', 'torch') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
