"""The .cnn language: what parses, what it means, and what every layer is named. No torch."""

from __future__ import annotations

import pytest

import specc
from specc import ast
from specc.errors import SpeccError
from specc.parse import _parser, parse
from specc.suggest import did_you_mean
from specc.syntax_errors import _CATALOGUE, VALUE_MISSING

HEAD = "network t\ninput 3x8x8\n"


def layers(body: str, head: str = HEAD) -> list[tuple[str, tuple[int, ...] | None]]:
    """(name, output shape) of every layer of a spec with the given body."""
    return [(row.name, row.output_shape) for row in specc.loads(head + body).check().layers]


def names(body: str, head: str = HEAD) -> list[str]:
    return [name for name, _ in layers(body, head)]


def error(text: str) -> str:
    with pytest.raises(SpeccError) as info:
        specc.loads(text, "t.cnn").check()
    return info.value.render()


# ---- the syntax tree ---------------------------------------------------------------


def test_the_parser_keeps_every_span():
    spec = parse("network demo\ninput 3x32x32\nstem: conv K=16 F=5 x2\n")
    st = spec.body[0]
    assert (spec.network.text, spec.input_shape) == ("demo", (3, 32, 32))
    assert (st.label.text, st.name.text, st.repeat.value) == ("stem", "conv", 2)
    assert (st.name.span.line, st.name.span.column, st.name.span.end_column) == (3, 7, 11)
    key, value = st.items[0].key, st.items[0].value
    assert (key.text, key.span.column, value.value, value.span.column) == ("K", 12, 16, 14)
    assert st.repeat_span.column == 21


def test_arithmetic_keeps_its_tree_and_spans():
    value = parse("input 3x8x8\nconv K=-(2+2)*3 F=1\n").body[0].items[0].value
    assert isinstance(value, ast.BinOp) and value.op == "*"
    assert isinstance(value.left, ast.Neg)
    assert (value.span.column, value.span.end_column) == (8, 16)


def test_block_definitions_and_calls():
    spec = parse("input 3x8x8\nblock b(K, S=1) {\n  conv K=K F=3 S=S\n}\nb(16, S=2) x3\n")
    block = spec.blocks[0]
    assert [p.name.text for p in block.params] == ["K", "S"]
    assert block.params[1].default.value == 1
    call = spec.body[0]
    assert call.name.text == "b" and call.repeat.value == 3
    assert [(a.key.text if a.key else None) for a in call.call_args] == [None, "S"]


@pytest.mark.parametrize(
    ("text", "kind", "params"),
    [
        ("network t\r\ninput 3x8x8\r\nrelu\r\n", "relu", 0),  # Windows line endings
        ("\ufeffnetwork t\ninput 3x8x8\nrelu\n", "relu", 0),  # a byte-order mark
        ("network t\ninput 3x8x8\nrelu", "relu", 0),  # no newline at the end
        ("\n\n# comments first\n\nnetwork t   # a trailing comment\ninput 3x8x8\n\n\nrelu\n\n", "relu", 0),
        ("network t\ninput 3x8x8\nconv K=4 \\\n     F=1\n", "conv", 16),  # a backslash continues the line: 3·4 weights + 4 biases
        ("network t\ninput 3x8x8\n\tconv\tK=4\tF=1\n", "conv", 16),
    ],
)
def test_layout_is_free(text, kind, params):
    report = specc.loads(text).check()
    assert [row.kind for row in report.layers] == [kind]
    assert report.total_params == params


def test_every_catalogue_example_fails_as_catalogued():
    """Each known-bad example is a syntax error, and its parser state gives back its own message."""
    for message, _hint, examples in _CATALOGUE:
        for example in examples:
            with pytest.raises(SpeccError) as info:
                parse(example)
            got = info.value.diagnostics[0].message
            assert got == message or (message == VALUE_MISSING and got.startswith("a value is missing after '")), example


def test_the_grammar_is_loaded_once():
    assert _parser() is _parser()


# ---- what the values mean ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "shape"),
    [
        ("conv 4 F=3", (4, 6, 6)),  # K is positional
        ("conv K=4 F=3 P=same", (4, 8, 8)),
        ("conv K=4 F=3 P=valid", (4, 6, 6)),
        ("conv K=4 F=3 P=full", (4, 10, 10)),
        ("conv K=4 F=2 P=same", (4, 8, 8)),  # an even filter pads one more after than before
        ("conv K=4 F=3 S=2 P=same", (4, 4, 4)),
        ("conv K=4 F=3 dilation=2", (4, 4, 4)),
        ("conv K=6 F=1 groups=3", (6, 8, 8)),
        ("pool max F=2", (3, 4, 4)),  # S defaults to F for pooling
        ("pool avg F=3 S=1 P=1", (3, 8, 8)),
        ("pool global", (3, 1, 1)),
        ("pool avg global", (3, 1, 1)),
        ("conv K=8 F=1\nmaxout 4", (2, 8, 8)),
        ("flatten", (192,)),
        ("flatten\nfc 10 bias=false", (10,)),
        ("dropout 0.25", (3, 8, 8)),
        ("leakyrelu 0.2", (3, 8, 8)),
        ("elu alpha=0.5", (3, 8, 8)),
        ("conv K=2*(3+1)/2 F=3-2", (4, 8, 8)),  # arithmetic: exact division stays whole
    ],
)
def test_layer_arguments(body, shape):
    assert layers(body)[-1][1] == shape


def test_block_parameters_and_defaults():
    spec = "block b(K, S=K/2) {\n  conv K=2*K F=3 S=S P=1\n}\nb(4)\nb(K=4, S=1)\n"
    assert layers(spec) == [("b1.conv1", (8, 4, 4)), ("b2.conv1", (8, 4, 4))]


def test_words_and_strings_and_train_settings():
    net = specc.loads(HEAD + 'train {\n  epochs=3 lr=1e-3\n  optimizer=adam data="fashion mnist"\n}\nrelu\n')
    assert net.network.train == {"epochs": 3, "lr": 0.001, "optimizer": "adam", "data": "fashion mnist"}


@pytest.mark.parametrize(
    "section",
    [
        "train { epochs=3 lr=1e-3 }",
        "train {\n  epochs=3\n  lr=1e-3\n}",
        "train { epochs=3\n  lr=1e-3 }",
        "train {\nepochs=3 lr=1e-3 # two\n}",
    ],
)
def test_a_train_section_on_one_line_or_several(section):
    assert specc.loads(HEAD + section + "\nrelu\n").network.train == {"epochs": 3, "lr": 0.001}


def test_init_and_default_name():
    assert specc.loads("input 1x4x4\ninit xavier\nrelu\n", "nets/tiny_net.cnn").network.init == "xavier"
    assert specc.loads("input 1x4x4\nrelu\n", "nets/tiny_net.cnn").name == "tiny_net"


def test_input_rank_chooses_the_convolution():
    assert layers("conv K=2 F=3", "input 4x100\n") == [("conv1", (2, 98))]
    assert layers("conv K=2 F=3", "input 1x8x8x8\n") == [("conv1", (2, 6, 6, 6))]
    assert layers("flatten\nfc 3", "input 784\n")[-1] == ("fc1", (3,))


# ---- naming rules (see the docstring of specc/expand.py) -------------------------------


def test_unnamed_layers_count_per_kind():
    assert names("conv K=4 F=1\nbatchnorm\nrelu\nconv K=4 F=1\nbatchnorm\nrelu") == ["conv1", "bn1", "relu1", "conv2", "bn2", "relu2"]


def test_a_label_names_a_layer_and_counters_skip_it():
    assert names("stem: conv K=4 F=1\nconv K=4 F=1\nrelu") == ["stem", "conv1", "relu1"]
    assert names("conv2: conv K=4 F=1\nconv K=4 F=1\nconv K=4 F=1") == ["conv2", "conv1", "conv3"]


def test_a_block_call_opens_a_namespace():
    spec = "block b() {\n  relu\n}\nb()\nb()\nnamed: b()\n"
    assert names(spec) == ["b1.relu1", "b2.relu1", "named.relu1"]


def test_a_repeat_numbers_its_members_like_sequential():
    spec = "block b() {\n  relu\n}\nb() x2\nlayer: b() x2\nrelu x2\n"
    assert names(spec) == ["b1.0.relu1", "b1.1.relu1", "layer.0.relu1", "layer.1.relu1", "relu1.0", "relu1.1"]


def test_a_named_seq_numbers_its_members_and_a_repeat_inside_continues():
    assert names("x: seq {\n  relu\n  relu x2\n}\n") == ["x.0", "x.1", "x.2"]


def test_unnamed_groups_open_no_namespace():
    spec = "relu\nresidual {\n  relu\n}\nconcat {\n  relu\n  relu\n}\nseq {\n  relu\n}\n"
    assert names(spec) == ["relu1", "relu2", "relu3", "relu4", "relu5"]


def test_a_projection_shortcut_is_named_beside_the_body():
    spec = "residual shortcut=project {\n  conv K=6 F=3 S=2 P=1\n}\n"
    assert names(spec) == ["conv1", "shortcut1.0", "shortcut1.1"]


def test_resnet_names_read_like_torchvision():
    rows = specc.load("specs/resnet18.cnn").check().layers
    got = {row.name for row in rows}
    assert {"stem", "bn", "layer1.0.conv1", "layer2.0.shortcut1.0", "layer4.1.bn2", "fc1"} <= got


# ---- flags and groups -------------------------------------------------------------------


def test_freeze_marks_layers_and_everything_in_a_frozen_group():
    spec = "conv K=4 F=1 freeze\nblk: seq freeze {\n  conv K=4 F=1\n  batchnorm\n}\nconv K=4 F=1\n"
    report = specc.loads(HEAD + spec).check()
    assert [row.frozen for row in report.layers] == [True, True, True, False]
    assert (report.frozen_params, report.trainable_params) == (16 + 20 + 8, 20)


@pytest.mark.parametrize("line", ["b(4) x2 freeze", "b(4) freeze x2"])
def test_freeze_goes_before_or_after_a_repeat(line):
    net = specc.loads(HEAD + "block b(K) {\n  conv K=K F=1\n}\n" + line + "\nrelu\n")
    assert [(row.name, row.frozen) for row in net.check().layers] == [("b1.0.conv1", True), ("b1.1.conv1", True), ("relu1", False)]


def test_concat_joins_channels_and_residual_adds():
    spec = "concat {\n  conv K=2 F=1\n  seq {\n    conv K=5 F=3 P=1\n    relu\n  }\n}\nresidual {\n  relu\n}\n"
    assert layers(spec)[-1] == ("relu2", (7, 8, 8))
    report = specc.loads(HEAD + spec).check()
    assert report.output_shape == (7, 8, 8)


@pytest.mark.parametrize("shortcut", ["project", "auto"])
def test_a_projection_is_a_1x1_conv_and_batchnorm(shortcut):
    report = specc.loads("input 1x8x8\n" + f"residual shortcut={shortcut} {{\n  conv K=4 F=1 bias=false\n}}\n").check()
    # the body conv (1->4, 4 weights), then the projection: a 1x1 conv (1->4) and batchnorm (2x4)
    assert [row.params for row in report.layers] == [4, 4, 8]
    assert report.output_shape == (4, 8, 8)


def test_auto_keeps_identity_where_shapes_agree():
    report = specc.loads(HEAD + "residual shortcut=auto {\n  conv K=3 F=3 P=1\n}\n").check()
    assert [row.name for row in report.layers] == ["conv1"]


# ---- did you mean ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "candidates", "hint"),
    [
        ("cnov", ["conv", "pool"], "did you mean 'conv'?"),
        ("Conv", ["conv", "pool"], "did you mean 'conv'?"),
        ("linear", ["conv", "fc"], "specc calls it 'fc'"),
        ("stride", ["K", "F", "S"], "specc calls it 'S'"),
        ("glorot", ["default", "kaiming", "xavier"], "specc calls it 'xavier'"),
        ("zzz", ["conv"], None),
    ],
)
def test_did_you_mean(word, candidates, hint):
    assert did_you_mean(word, candidates) == hint


def test_syntax_errors_stop_before_meaning():
    text = error("network t\ninput 3x8x8\nconv K= F=3\nrelu x2 K=3\n")
    assert "t.cnn:3:6: error: a value is missing after 'K='" in text
    assert "t.cnn:4:9: error: a repeat count goes last on the line" in text


def test_a_repeat_follows_a_space_and_a_shape_is_never_one():
    assert names("conv K=4 F=3 P=1 x2\n") == ["conv1.0", "conv1.1"]
    assert "t.cnn:3:12: error: conv F takes one number: the filter is F×F, got 3x3" in error(HEAD + "conv K=4 F=3x3\n")
    assert "a repeat count needs a space before it" in error(HEAD + "relu\nconv K=4 F=(3)x2\n")


# ---- repeats: counts from block parameters, and after a group's '}' ---------------------


def test_a_repeat_count_can_be_a_block_parameter():
    spec = "block stage(K, N) {\n  conv K=K F=1 x N\n}\nstage(4, 3)\n"
    assert names(spec) == ["stage1.conv1.0", "stage1.conv1.1", "stage1.conv1.2"]


def test_a_count_of_zero_from_a_parameter_makes_no_copies_and_no_namespace():
    """torchvision's _make_layer: the first block with the stride, then N - 1 more."""
    spec = "block stage(K, N) {\n  conv K=K F=3 S=2 P=1\n  conv K=K F=3 P=1 x N-1\n}\nstage(4, 1)\nstage(4, 3)\n"
    assert names(spec) == ["stage1.conv1", "stage2.conv1", "stage2.conv2.0", "stage2.conv2.1"]


def test_a_call_site_repeats_by_a_parameter_in_scope():
    spec = "block b(K) {\n  conv K=K F=1\n}\nblock stage(K, N) {\n  b(K) x N*2\n}\nstage(4, 1)\n"
    assert names(spec) == ["stage1.b1.0.conv1", "stage1.b1.1.conv1"]


@pytest.mark.parametrize("repeat", ["relu x2", "relu x 2", "relu x (1+1)"])
def test_a_number_count_with_or_without_a_space(repeat):
    assert names(repeat + "\n") == ["relu1.0", "relu1.1"]


def test_a_word_x_is_still_a_name_and_a_parameter():
    assert names("x: seq {\n  relu\n}\n") == ["x.0"]
    assert layers("block b(x) {\n  fc x\n}\nflatten\nb(5)\n")[-1] == ("b1.fc1", (5,))


@pytest.mark.parametrize("where", ["before", "after"])
def test_a_groups_repeat_goes_before_its_brace_or_after(where):
    head, tail = ("residual x3 freeze {", "}") if where == "before" else ("residual {", "} x3 freeze")
    report = specc.loads(HEAD + f"{head}\n  conv K=3 F=3 P=1\n{tail}\nrelu\n").check()
    assert [(row.name, row.frozen) for row in report.layers] == [
        ("residual1.0.conv1", True),
        ("residual1.1.conv1", True),
        ("residual1.2.conv1", True),
        ("relu1", False),
    ]
    assert [row.line for row in report.rows if row.is_group][0] == 3  # the group's row points at its head


def test_a_repeat_after_the_brace_needs_its_space_and_nothing_but_freeze_after_it():
    assert "a repeat count goes last on the line" in error(HEAD + "seq {\n  relu\n} x2 K=3\n")
    assert "relu does not take 'frez' here" in error(HEAD + "relu x2 frez\n")
    assert "a group's repeat count goes after a space" in error(HEAD + "seq {\n  relu\n}x2\n")


# ---- gate, stochastic depth, channel split ---------------------------------------------------

SE = "gate {\n  pool avg global\n  conv K=2 F=1\n  relu\n  conv K=8 F=1\n  sigmoid\n}\n"


def test_a_gate_keeps_its_input_shape_and_counts_its_body():
    report = specc.loads("input 8x6x6\n" + SE).check()
    assert report.output_shape == (8, 6, 6)
    assert [row.output_shape for row in report.layers] == [(8, 1, 1), (2, 1, 1), (2, 1, 1), (8, 1, 1), (8, 1, 1)]
    assert report.total_params == (8 * 2 + 2) + (2 * 8 + 8)
    gate = next(row for row in report.rows if row.is_group)
    assert (gate.kind, gate.output_shape, gate.receptive_field) == ("gate", (8, 6, 6), 6)  # a global pool sees the whole map


@pytest.mark.parametrize(
    ("body", "fits"), [("conv K=1 F=1", True), ("conv K=8 F=1", True), ("conv K=4 F=1", False), ("pool max F=2", False)]
)
def test_a_gates_body_must_broadcast_against_its_input(body, fits):
    text = f"input 8x6x6\ngate {{\n  {body}\n}}\n"
    if fits:
        assert specc.loads(text).check().output_shape == (8, 6, 6)
    else:
        assert "cannot multiply its input 8×6×6" in error(text)


def test_residual_drop_adds_a_stochastic_depth_layer_after_the_body():
    report = specc.loads(HEAD + "residual drop=0.1 {\n  conv K=3 F=3 P=1\n}\nrelu\n").check()
    assert [(row.name, row.kind) for row in report.layers] == [
        ("conv1", "conv"),
        ("stochastic_depth1", "stochastic_depth"),
        ("relu1", "relu"),
    ]
    assert report.total_params == 84 and report.output_shape == (3, 8, 8)
    assert names("residual {\n  conv K=3 F=3 P=1\n}\n") == ["conv1"]  # drop=0, the default: none


def test_stochastic_depth_is_not_a_layer_of_its_own():
    assert "unknown layer 'stochastic_depth'" in error(HEAD + "stochastic_depth 0.1\n")


def test_concat_split_gives_each_branch_its_slice_of_the_channels():
    text = "input 6x8x8\nconcat split {\n  conv K=5 F=1\n  pool max F=1\n  seq {\n    relu\n  }\n}\n"
    report = specc.loads(text).check()
    assert [(row.name, row.output_shape, row.params) for row in report.layers] == [
        ("conv1", (5, 8, 8), 2 * 5 + 5),
        ("pool1", (2, 8, 8), 0),
        ("relu1", (2, 8, 8), 0),
    ]
    assert report.output_shape == (9, 8, 8)
    assert next(row.kind for row in report.rows if row.is_group) == "concat split"


def test_concat_split_needs_channels_that_divide():
    assert "concat split cannot share 6 channels equally among 4 branches" in error(
        "input 6x8x8\nconcat split {\n  relu\n  relu\n  relu\n  relu\n}\n"
    )


RESNET34_BY_STAGES = """network resnet34
input 3x224x224
block basic(K, S=1) {
    residual shortcut=auto {
        conv K=K F=3 S=S P=1 bias=false
        batchnorm
        relu
        conv K=K F=3 P=1 bias=false
        batchnorm
    }
    relu
}
block stage(K, N, S=2) {
    basic(K, S=S)
    basic(K) x N-1
}
stem: conv K=64 F=7 S=2 P=3 bias=false
bn: batchnorm
relu
pool max F=3 S=2 P=1
layer1: stage(64, 3, S=1)
layer2: stage(128, 4)
layer3: stage(256, 6)
layer4: stage(512, 3)
pool avg global
flatten
fc 1000
"""


def test_resnet34_written_by_stages_counts_as_the_shipped_spec():
    by_stages = specc.loads(RESNET34_BY_STAGES).check()
    shipped = specc.load("specs/resnet34.cnn").check()
    assert (by_stages.total_params, by_stages.total_macs) == (shipped.total_params, shipped.total_macs) == (21_797_672, 3_663_779_432)
    assert [r.output_shape for r in by_stages.layers] == [r.output_shape for r in shipped.layers]


@pytest.mark.parametrize("line", ["b(4) x N freeze", "b(4) x N-1+1 freeze", "b(4) freeze x N"])
def test_freeze_follows_a_count_from_a_parameter_too(line):
    spec = f"block b(K) {{\n  conv K=K F=1\n}}\nblock stage(N) {{\n  {line}\n}}\nstage(2)\nrelu\n"
    rows = specc.loads(HEAD + spec).check().layers
    assert [(row.name, row.frozen) for row in rows] == [("stage1.b1.0.conv1", True), ("stage1.b1.1.conv1", True), ("relu1", False)]
