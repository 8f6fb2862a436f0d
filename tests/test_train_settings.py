"""The training settings, declared once in train_settings.SETTINGS: what is derived from them, and check's diagnostics.

No torch here: the goldens in tests/errors/train_*.cnn show the diagnostics as users see them.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

import specc
from specc.cli import main
from specc.errors import SpeccError, UsageError
from specc.runners.config import RESUME_FLAGS, SPEC_KEYS, TrainConfig, from_saved, resolve
from specc.train_settings import SETTINGS, TrainSetting, flag_example, spec_example

HEAD = "network n\ninput 1x8x8\n"


def test_the_configuration_has_one_field_per_setting_with_its_default():
    assert list(TrainConfig.model_fields) == [s.name for s in SETTINGS]
    defaults = TrainConfig().model_dump()
    assert defaults == {s.name: list(s.default) if s.type == "words" else s.default for s in SETTINGS}
    assert SPEC_KEYS == tuple(s.name for s in SETTINGS if s.in_spec)
    assert set(RESUME_FLAGS) == {"data", "device", "compile"}


def test_every_setting_has_a_flag_of_specc_train_with_its_help():
    from specc.cli.train import train

    options = {opt: param for param in train.params for opt in param.opts}
    for setting in SETTINGS:
        assert setting.all_flags, setting.name
        for flag in setting.all_flags:
            assert options[flag].name == setting.name and options[flag].help == setting.help


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.in_spec], ids=lambda s: s.name)
def test_each_example_is_taken_by_the_spec_and_the_flag(setting: TrainSetting):
    written = specc.loads(f"{HEAD}train {{ {spec_example(setting)} }}\nrelu\n").network.train
    flag, value = flag_example(setting).split(" ", 1)
    from_flag = resolve({}, {setting.name: value_as_click_reads(setting, value)})
    assert getattr(resolve(written, {}), setting.name) == getattr(from_flag, setting.name) != setting.default
    assert flag == setting.flag


def value_as_click_reads(setting: TrainSetting, text: str):
    return {"int": int, "number": float}.get(setting.type, str)(text)


def test_check_reports_every_mistake_of_the_section_at_once():
    with pytest.raises(SpeccError) as caught:
        specc.loads(f"{HEAD}train {{ epochs=2 optimizr=adam schedule=cosin lr=-1 }}\nrelu\n").check()
    found = [(d.message, d.span.column) for d in caught.value.diagnostics]
    assert found == [
        ("unknown train setting 'optimizr'", 18),
        ("train setting schedule: unknown schedule 'cosin'", 41),
        ("train setting lr: must be greater than 0", 50),
    ]
    assert caught.value.diagnostics[0].hint == "did you mean 'optimizer'?"


def test_a_good_section_is_kept_by_the_settings_own_names():
    written = specc.loads(f'{HEAD}train {{ batch=32 optimiser=sgd augment="flip, crop" epochs=3 }}\nrelu\n').network.train
    assert written == {"batch_size": 32, "optimizer": "sgd", "augment": ["flip", "crop"], "epochs": 3}
    config = resolve(written, {"epochs": 5})
    assert (config.batch_size, config.optimizer, config.augment, config.epochs) == (32, "sgd", ["flip", "crop"], 5)
    assert config.learning_rate == 0.1


def test_an_alias_and_its_setting_are_one_setting_given_twice_even_where_the_first_is_wrong():
    with pytest.raises(SpeccError) as caught:
        specc.loads(f"{HEAD}train {{ batch=0 batch_size=64 }}\nrelu\n")
    assert [d.message for d in caught.value.diagnostics] == [
        "train setting batch: must be greater than or equal to 1",
        "the train setting 'batch_size' is given twice",
    ]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"momentum": 1.5}, "--momentum 1.5: must be less than 1"),
        ({"batch_size": 0}, "--batch-size 0: must be greater than or equal to 1"),
        ({"augment": "flip,rotate"}, "--augment flip,rotate: unknown augmentation 'rotate'"),
        ({"precision": "fp64"}, "--precision fp64: unknown precision 'fp64'"),
    ],
)
def test_a_bad_flag_is_named(flags, message):
    with pytest.raises(UsageError) as caught:
        resolve({}, flags)
    assert str(caught.value) == message and caught.value.exit_code == 1


def test_resume_names_the_flags_it_does_not_take_and_checks_those_it_does():
    saved = TrainConfig().model_dump()
    with pytest.raises(UsageError, match="takes no --batch-size, --epochs"):
        from_saved(saved, {"batch_size": 8, "epochs": 3, "device": None})
    assert from_saved(saved, {"device": "cpu"}).device == "cpu"
    with pytest.raises(UsageError, match="--device gpu: unknown device 'gpu'"):
        from_saved(saved, {"device": "gpu"})


# Which loaded specc modules hold pydantic (a module, or a name imported from it), after a check.
CHECK_AND_LIST = """
import inspect, json, sys
from specc.cli import main
try:
    main(["check", sys.argv[1]])
except SystemExit as exit:
    code = exit.code
def holds_pydantic(module):
    return any(
        (inspect.ismodule(v) and v.__name__.startswith("pydantic")) or str(getattr(v, "__module__", "")).startswith("pydantic")
        for v in list(vars(module).values())
    )
users = sorted(name for name, m in list(sys.modules.items()) if name.startswith("specc") and m and holds_pydantic(m))
print(json.dumps({"code": code, "torch": "torch" in sys.modules, "users": users}))
"""


def test_check_of_a_train_section_imports_neither_torch_nor_the_configuration(tmp_path):
    spec = tmp_path / "net.cnn"
    spec.write_text(f"{HEAD}train {{ epochs=2 optimizr=adam }}\nrelu\n")
    command = [sys.executable, "-c", CHECK_AND_LIST, str(spec)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["code"] == 2 and "optimizr" in done.stderr
    assert not report["torch"]
    # pydantic stays with the run configuration (runners/config.py); the AST's own use of it is issue 11's point 6, and goes
    assert set(report["users"]) <= {"specc.ast"}, report


def test_train_help_lists_the_settings_in_their_order():
    shown = CliRunner().invoke(main, ["train", "--help"], terminal_width=200).output
    positions = [shown.index("  " + s.flag) for s in SETTINGS]
    assert positions == sorted(positions)
