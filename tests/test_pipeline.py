"""The recovery rules of specc/pipeline.py: independent mistakes are reported in one run, and none
that only follows from another. No torch: every spec here is parsed, expanded and checked only."""

from __future__ import annotations

import pytest

import specc
from specc.errors import Diagnostics, Source, Span, SpeccError
from specc.pipeline import build, measure


def mistakes(text: str, strict: bool = False) -> list[tuple[int | None, str]]:
    """(line, message) of every diagnostic `specc check` would print for `text`, in order."""
    with pytest.raises(SpeccError) as caught:
        specc.loads(text).check(strict)
    return [(d.span.line if d.span else None, d.message) for d in caught.value.diagnostics]


def test_independent_expansion_and_shape_mistakes_are_reported_together():
    found = mistakes("input 3x8x8\nfc 10\nconvv K=8 F=3\nflatten\nfc 10\n")
    assert found == [(2, "fc needs a flat input, got 3×8×8"), (3, "unknown layer 'convv'")]


def test_nothing_after_a_statement_that_failed_to_expand_is_shape_checked():
    """fc after an unknown layer may or may not be flat: no follow-on 'fc needs a flat input'."""
    assert mistakes("input 3x8x8\nconvv K=8 F=3\nfc 10\n") == [(2, "unknown layer 'convv'")]


def test_a_syntax_error_lets_argument_errors_on_other_lines_be_reported():
    found = mistakes("input 3x8x8\nconv K 16 F=3\nrelu\nconv K=8 F==3\n")
    assert found == [(2, "'K' needs a '=' before its value"), (4, "unexpected '='")]


def test_after_a_syntax_error_lines_inside_a_block_are_not_argument_checked():
    """`K=Q` in a block might be a parameter the failed line was meant to declare: only line 6 is reported."""
    found = mistakes("input 3x8x8\nblock b(K) {\n  conv K=Q F=3\n}\nrelu =\nconv K=y F=3\n")
    assert found == [(5, "'=' must follow an argument name"), (6, "conv K must be a whole number, got 'y'")]


def test_after_a_blanked_line_that_opened_a_group_later_lines_are_not_argument_checked():
    """The lines after `seq { )` may have moved out of or into a group: none is looked at."""
    found = mistakes("input 3x8x8\nseq { )\n  conv K=x F=3\n}\nconv K=y F=3\n")
    assert found == [(2, "unexpected ')'")]


def test_a_missing_input_stops_before_shapes_but_keeps_expansion_errors():
    found = mistakes("inputt 3x9x9\nconv K=0 F=3\nfc 10\n")
    assert found == [(None, "the spec has no `input` line"), (1, "unknown keyword 'inputt'"), (2, "conv K must be at least 1, got 0")]


def test_warnings_wait_for_a_clean_spec_and_strict_makes_them_errors():
    untiled = "input 3x9x9\npool max F=2\n"
    assert mistakes(untiled + "convv K=8\n") == [(3, "unknown layer 'convv'")]
    report = specc.loads(untiled + "flatten\n").check()
    assert [w.line for w in (d.span for d in report.warnings)] == [2]
    [(line, message)] = mistakes(untiled + "flatten\n", strict=True)
    assert line == 2 and message.startswith("pool does not tile its input")


def test_a_mistake_in_a_block_is_reported_once_with_the_chain_of_calls():
    text = "input 3x8x8\nblock b(K) {\n  conv K=K F=9\n}\nblock c(K) {\n  b(K)\n}\nc(4)\nc(4)\n"
    source = Source(text)
    with pytest.raises(SpeccError) as caught:
        measure(build(source), source)
    [diagnostic] = caught.value.diagnostics
    assert diagnostic.span.line == 3
    assert diagnostic.notes == [("in block 'b', called here", Span(6, 3, 6, 4)), ("in block 'c', called here", Span(8, 1, 8, 2))]


def test_the_sink_drops_repeats_and_a_call_on_the_mistakes_own_line():
    sink = Diagnostics()
    here, call, outer = Span(5, 3, 5, 5), Span(5, 1, 5, 2), Span(9, 1, 9, 2)
    calls = [("in block 'a', called here", outer), ("in block 'b', called here", call)]
    sink.error("bad", here, "fix it", calls)
    sink.error("bad", here, "fix it", calls)
    sink.warning("odd", Span(2, 1, 2, 2), "look")
    sink.error("first", None, "write it")
    assert [d.message for d in sink.errors] == ["first", "bad"]  # file order, whole-file first
    assert sink.errors[1].notes == [("in block 'a', called here", outer)]
    assert [d.message for d in sink.warnings] == ["odd"] and len(sink) == 3


def test_a_clean_spec_builds_and_measures():
    source = Source("input 3x8x8\nconv K=4 F=3 P=same\nflatten\nfc 2\n")
    report = measure(build(source), source)
    assert report.output_shape == (2,) and report.total_params == 4 * 27 + 4 + 256 * 2 + 2


def test_the_expander_builds_the_projection_and_the_checker_sizes_it():
    source = Source("input 8x8x8\nresidual shortcut=project {\n  conv K=16 F=3 S=2 P=1\n}\nresidual auto {\n  relu\n}\n")
    network = build(source)
    project, auto = network.body
    conv, bn = project.projection
    assert (conv.kind.name, bn.kind.name) == ("conv", "batchnorm") and conv.name == "shortcut1.0"
    assert conv.args == {"K": None, "F": 1, "S": None, "P": 0, "dilation": 1, "groups": 1, "bias": False}
    assert bn.args == {"eps": 1e-5, "momentum": 0.1} and project.shortcut_layers == []  # not sized yet
    measure(network, source)
    assert project.shortcut_layers == [conv, bn] and (conv.args["K"], conv.args["S"]) == (16, 2)
    assert conv.out_shape == (16, 4, 4) and conv.params == 8 * 16
    assert auto.projection and auto.shortcut_layers == []  # equal shapes: auto does not project


def test_padding_is_resolved_once_and_the_code_generator_uses_it():
    net = specc.loads("input 1x6x6\nconv K=2 F=2 P=same\nconv K=2 F=3 P=same\nflatten\n")
    net.check()
    uneven, even = net.network.layers()[:2]
    assert uneven.pads == ((0, 1), (0, 1)) and even.pads == ((1, 1), (1, 1))
    source = net.to_source()
    assert "x = self.conv1(F.pad(x, (0, 1, 0, 1)))" in source
    assert "nn.Conv2d(2, 2, 3, padding=1)" in source and "nn.Conv2d(1, 2, 2)" in source


def test_an_empty_concat_split_is_reported_not_divided_by():
    """Found by bench/fuzz_specs.py: the failed group's layers were checked by sharing channels among no branches."""
    assert mistakes("input 4x8x8\nconcat split {\n}\nconvv\n") == [(2, "'concat' has an empty body"), (4, "unknown layer 'convv'")]
