"""Every setting of a training run, declared once, and the checks of a value against its declaration.

A declaration says what the setting takes (type, choices, bounds), its default, its help, an
example, whether a spec's `train { }` section may set it, the flags that set it on the command line
and whether `--resume` may change it. The rest is derived from `SETTINGS`: the resolved
configuration (`runners/config.TrainConfig`), the options of `specc train` (cli/train.py) and the
diagnostics of `specc check` on a `train { }` section (`read_section`).

Plain Python: `specc check` imports this, and neither torch nor pydantic.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

from .arguments import Value, value_text
from .errors import UsageError
from .suggest import did_you_mean

if TYPE_CHECKING:
    from . import ast
    from .errors import Span

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine", "onecycle")
AUGMENTATIONS = ("flip", "crop", "translate")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
# auto: from the spec's end and the data's targets (runners/losses.py); the others insist, and are refused where they do not fit
LOSSES = ("auto", "cross_entropy", "bce", "mse")


class TrainSetting(NamedTuple):  # not a frozen dataclass, whose generated methods cost `specc check` milliseconds at import
    """One setting. `type` is int, number, word (one of `choices`), words (a comma list of them), text or switch."""

    name: str
    type: str
    default: Any
    help: str  # as `specc train --help` shows it
    example: Any
    choices: tuple[str, ...] = ()
    minimum: int | None = None  # bounds, whole numbers all: minimum <= value, above < value, value < below
    above: int | None = None
    below: int | None = None
    optional: bool = False  # None is a value of its own: "the optimiser's usual one", "the default data"
    in_spec: bool = True  # may a spec's train section set it? The machine and the session are the command line's
    flags: tuple[str, ...] = ()  # the first is the one messages name; default: --name-with-dashes
    aliases: tuple[str, ...] = ()  # other names a spec may write it by
    on_resume: bool = False  # may --resume change it? Only where the run executes, never what it computes
    noun: str = ""  # what one choice is called in a message: "unknown augmentation 'rotate'"

    @property
    def flag(self) -> str:
        return self.flags[0] if self.flags else "--" + self.name.replace("_", "-")

    @property
    def all_flags(self) -> tuple[str, ...]:
        return self.flags or (self.flag,)


def _one_of(choices: tuple[str, ...]) -> str:
    return ", ".join(choices)


SETTINGS: tuple[TrainSetting, ...] = (
    # the recipe: a spec's train section may hold it
    TrainSetting("epochs", "int", 10, "Passes over the training data.", 20, minimum=1),
    TrainSetting(
        "batch_size",
        "int",
        128,
        "Samples per step (per process when distributed).",
        64,
        minimum=1,
        flags=("--batch-size", "--batch"),
        aliases=("batch",),
    ),
    TrainSetting("optimizer", "word", "adam", f"One of {_one_of(OPTIMIZERS)}.", "sgd", choices=OPTIMIZERS, aliases=("optimiser",)),
    TrainSetting(
        "lr", "number", None, "Learning rate (the peak for onecycle); default: the optimiser's usual one.", 0.001, above=0, optional=True
    ),
    TrainSetting("momentum", "number", 0.9, "Momentum of the momentum and nesterov optimisers (0.9).", 0.95, minimum=0, below=1),
    TrainSetting(
        "weight_decay", "number", None, "Weight decay of conv and fc weights (biases and norms get none).", 0.0005, minimum=0, optional=True
    ),
    TrainSetting("schedule", "word", "constant", f"Learning-rate schedule: {_one_of(SCHEDULES)}.", "cosine", choices=SCHEDULES),
    TrainSetting(
        "loss",
        "word",
        "auto",
        f"One of {_one_of(LOSSES)} (auto: from the spec's last layer and the data's targets).",
        "cross_entropy",
        choices=LOSSES,
    ),
    TrainSetting("label_smoothing", "number", 0.0, "Label smoothing of the training loss, e.g. 0.1.", 0.1, minimum=0, below=1),
    TrainSetting(
        "augment", "words", (), f"Comma list of {_one_of(AUGMENTATIONS)}, or none.", "flip", choices=AUGMENTATIONS, noun="augmentation"
    ),
    # torch's generators take a signed 64-bit seed
    TrainSetting("seed", "int", 0, "Seed of initialisation, shuffling, validation split and augmentation.", 1, minimum=0, below=2**63),
    TrainSetting("val_fraction", "number", 0.1, "Fraction of the training data held out for validation (0.1).", 0.2, minimum=0, below=1),
    TrainSetting(
        "data",
        "text",
        None,
        "Data: IDX folder, image folders or .npz; default $SPECC_DATA, then the installed Fashion-MNIST.",
        '"data/cifar10"',
        optional=True,
        on_resume=True,
    ),
    # the machine and the session: flags only
    TrainSetting("limit", "int", 0, "Use only the first N training samples (quick runs).", 1000, minimum=0, in_spec=False),
    TrainSetting(
        "device",
        "word",
        "auto",
        f"One of {_one_of(DEVICES)} (auto: the GPU where there is one).",
        "cuda",
        choices=DEVICES,
        in_spec=False,
        on_resume=True,
    ),
    TrainSetting(
        "precision",
        "word",
        "auto",
        f"One of {_one_of(PRECISIONS)} (auto: bf16 or fp16 on GPUs, bf16 on CPUs that compute it natively).",
        "bf16",
        choices=PRECISIONS,
        in_spec=False,
    ),
    TrainSetting("compile", "switch", False, "Compile the model with torch.compile.", True, in_spec=False, on_resume=True),
)
BY_NAME = {setting.name: setting for setting in SETTINGS}
SPEC_NAMES = {name: s.name for s in SETTINGS if s.in_spec for name in (s.name, *s.aliases)}


class SettingError(Exception):
    """A value its setting does not take: what is wrong (`problem`) and how to write it (`hint`)."""

    def __init__(self, problem: str, hint: str):
        super().__init__(problem)
        self.problem, self.hint = problem, hint


def convert(setting: TrainSetting, value: Any, example: str) -> Any:
    """`value` as the setting holds it (`augment` as a list), or SettingError. `example` shows the setting written right."""
    if value is None and setting.optional:
        return None
    if setting.type in ("word", "words"):
        return _choice(setting, value)
    if setting.type == "text":
        if not isinstance(value, str):
            raise SettingError(f"must be text, got {_short(value)}", f"write it in quotes, as in {example}")
        return value
    if setting.type == "switch":
        if not isinstance(value, bool):
            raise SettingError(f"must be true or false, got {_short(value)}", f"write {example}")
        return value
    return _number(setting, value, example)


def _choice(setting: TrainSetting, value: Any) -> str | list[str]:
    words = [value] if setting.type == "word" else _words(value)
    for word in words:
        if word not in setting.choices:
            suggestion = did_you_mean(str(word), setting.choices) if isinstance(word, str) else None
            hint = f"{suggestion + ' ' if suggestion else ''}choose from {_one_of(setting.choices)}"
            raise SettingError(f"unknown {setting.noun or setting.name} '{_short(word, quoted=False)}'", hint)
    return value if setting.type == "word" else words


def _words(value: Any) -> list:
    """A comma list: `flip, crop` or ["flip", "crop"]; `none` is no words at all."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip() and part.strip() != "none"]
    return list(value) if isinstance(value, list | tuple) else [value]


def _number(setting: TrainSetting, value: Any, example: str) -> int | float:
    whole = setting.type == "int"
    hint = f"{describe(setting)}, as in {example}"
    if isinstance(value, bool) or not isinstance(value, int | float) or (whole and isinstance(value, float) and math.isfinite(value)):
        raise SettingError(f"must be {'a whole number' if whole else 'a number'}, got {_short(value)}", hint)
    for bound, fails, words in (
        (setting.minimum, lambda b: value < b, "greater than or equal to"),
        (setting.above, lambda b: value <= b, "greater than"),
        (setting.below, lambda b: value >= b, "less than"),
    ):
        if bound is not None and fails(bound):
            raise SettingError(f"must be {words} {bound}", hint)
    if not math.isfinite(value):  # 1e999, or nan and inf from a flag
        raise SettingError(f"must be a finite number, got {_short(value)}", hint)
    if whole and abs(value) > 2**63 - 1:  # past what torch's int64 holds; a float may be as large as it likes
        raise SettingError(f"is too large: {_short(value)}", hint)
    return value if whole else float(value)


def flag_value(name: str, value: Any) -> Any:
    """The value of setting `name`'s flag as the setting holds it; a UsageError naming the flag where it is wrong."""
    setting = BY_NAME[name]
    if value is None:
        return None
    try:
        return convert(setting, value, flag_example(setting))
    except SettingError as err:
        raise UsageError(f"{setting.flag} {value}: {err.problem}", err.hint) from None


def describe(setting: TrainSetting) -> str:
    """What a number setting takes, in words: `momentum is a number from 0 up to (not including) 1`."""
    kind = "a whole number" if setting.type == "int" else "a number"
    if setting.minimum is not None and setting.below is not None:
        return f"{setting.name} is {kind} from {setting.minimum} up to (not including) {setting.below}"
    if setting.minimum is not None:
        return f"{setting.name} is {kind}, {setting.minimum} or more"
    if setting.above is not None:
        return f"{setting.name} is {kind} above {setting.above}"
    return f"{setting.name} is {kind}"


def spec_example(setting: TrainSetting) -> str:
    return f"{setting.name}={setting.example}"


def flag_example(setting: TrainSetting) -> str:
    return setting.flag if setting.type == "switch" else f"{setting.flag} {setting.example}".replace('"', "")


def read_section(written: list[tuple[ast.Setting, Value]]) -> tuple[dict[str, Any], list[tuple[str, Span, str]]]:
    """A spec's `train { }` settings, by their own names and converted, and every mistake in them: (message, span, hint)."""
    values: dict[str, Any] = {}
    problems: list[tuple[str, Span, str]] = []
    for item, value in written:
        key = item.key.text
        name = SPEC_NAMES.get(key)
        if name is None:
            problems.append(_not_a_spec_setting(item))
        elif name in values:
            problems.append((f"the train setting '{key}' is given twice", item.key.span, "keep one of them"))
        else:
            values[name] = None  # given, even where wrong: a second one is "given twice" all the same
            if value.failed:
                continue  # the arithmetic that failed is reported where it failed
            if isinstance(value.value, tuple):
                hint = f"write one value, as in {spec_example(BY_NAME[name])}"
                problems.append((f"a train setting takes one value, got {value_text(value.value)}", value.span, hint))
                continue
            try:
                values[name] = convert(BY_NAME[name], value.value, spec_example(BY_NAME[name]))
            except SettingError as err:
                problems.append((f"train setting {key}: {err.problem}", value.span, err.hint))
    return values, problems


def _not_a_spec_setting(item: ast.Setting) -> tuple[str, Span, str]:
    key = item.key.text
    setting = BY_NAME.get(key)
    if setting is not None and not setting.in_spec:
        hint = f"it depends on the machine or the session, not on the network: give it to a run, as in specc train {flag_example(setting)}"
        return f"the train setting '{key}' is set on the command line, not in a spec", item.key.span, hint
    hint = did_you_mean(key, SPEC_NAMES) or f"the settings are {', '.join(s.name for s in SETTINGS if s.in_spec)}"
    return f"unknown train setting '{key}'", item.key.span, hint


def _short(value: Any, quoted: bool = True) -> str:
    """A value as the user wrote it, a huge number named by its length."""
    if isinstance(value, str):
        return f"'{value}'" if quoted else value
    text = repr(value) if isinstance(value, float) else str(value)
    return text if len(text) < 24 else f"{text[:10]}…({len(text)} digits)"
