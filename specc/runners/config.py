"""What a training run does: one validated configuration, from defaults, the spec and flags.

The spec's `train { ... }` section holds the recipe (epochs, optimiser,
schedule, augmentation...); command-line flags override it; `config.json`
in a run directory holds the result, so that `--resume` needs nothing else.
A bad setting is reported where it was written: a spec setting with its
line and column, a flag by its name. No torch here: a mistake in the recipe
is reported before torch is imported.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import InputFileError, Source, Span, SpeccError, UsageError

Optimizer = Literal["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"]
Schedule = Literal["constant", "step", "cosine", "onecycle"]
Augmentation = Literal["flip", "crop", "translate"]
Device = Literal["auto", "cpu", "cuda", "mps"]
Precision = Literal["auto", "bf16", "fp16", "fp32"]
# auto: from the spec's end and the data's targets (runners/losses.py); the others insist, and are refused where they do not fit
Loss = Literal["auto", "cross_entropy", "bce", "mse"]

OPTIMIZERS: tuple[str, ...] = Optimizer.__args__
SCHEDULES: tuple[str, ...] = Schedule.__args__
AUGMENTATIONS: tuple[str, ...] = Augmentation.__args__
DEVICES: tuple[str, ...] = Device.__args__
PRECISIONS: tuple[str, ...] = Precision.__args__
LOSSES: tuple[str, ...] = Loss.__args__

# The learning rate each optimiser is usually started with, when neither spec nor flag gives one.
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "adagrad": 0.01, "rmsprop": 1e-3, "adam": 1e-3, "adamw": 1e-3}


class TrainConfig(BaseModel):
    """Every setting of a run. `None` means "the optimiser's usual value" (see `learning_rate`)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # the recipe: may be written in the spec's train section
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(128, ge=1)
    optimizer: Optimizer = "adam"
    lr: float | None = Field(None, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float | None = Field(None, ge=0)
    schedule: Schedule = "constant"
    loss: Loss = "auto"
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    augment: list[Augmentation] = []
    seed: int = Field(0, ge=0, lt=2**63)  # torch's generators take a signed 64-bit seed
    val_fraction: float = Field(0.1, ge=0, lt=1)
    data: str | None = None
    # the machine and the session: flags only
    limit: int = Field(0, ge=0)
    device: Device = "auto"
    precision: Precision = "auto"
    compile: bool = False

    @field_validator("augment", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip() and part.strip() != "none"]
        return value

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    @property
    def decay(self) -> float:
        # AdamW without decay is Adam; torch's AdamW starts at 0.01 for that reason.
        if self.weight_decay is not None:
            return self.weight_decay
        return 0.01 if self.optimizer == "adamw" else 0.0


# Settings a spec's train section may hold; device, precision and the like belong to the machine.
SPEC_KEYS = (
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "schedule",
    "loss",
    "label_smoothing",
    "augment",
    "seed",
    "val_fraction",
    "data",
)
SPEC_ALIASES = {"batch": "batch_size", "optimiser": "optimizer"}
# What --resume may change: where the run executes, not what it computes.
RESUME_FLAGS = ("device", "data", "compile")


def resolve(spec_train: dict[str, Any], flags: dict[str, Any], source: Source | None = None) -> TrainConfig:
    """Defaults, overridden by the spec's train section, overridden by flags.

    `spec_train` is `Network.train` (setting name -> number or word); `flags`
    holds the flags as parsed, None meaning not given. Errors name the spec
    setting, at its place in `source`, or the flag at fault.
    """
    settings: dict[str, Any] = {}
    for key, value in spec_train.items():
        name = SPEC_ALIASES.get(key, key)
        if name not in SPEC_KEYS:
            hint = _suggest(key, SPEC_KEYS) or f"the settings are {', '.join(SPEC_KEYS)}"
            raise SpeccError(f"unknown train setting '{key}'", _spec_span(source, key, "key"), hint, source=source)
        settings[name] = value
    given = {name: value for name, value in flags.items() if value is not None}
    settings.update(given)
    try:
        return TrainConfig(**settings)
    except ValidationError as err:
        problem = err.errors()[0]
        field = str(problem["loc"][0]) if problem["loc"] else ""
        message = problem["msg"].replace("Input should be", "must be")
        raise _setting_error(field, settings.get(field), message, None if field in given else source) from None


def from_saved(saved: dict, flags: dict[str, Any]) -> TrainConfig:
    """The configuration in a run's config.json, with the flags --resume allows."""
    changed = sorted(name for name, value in flags.items() if value is not None and name not in RESUME_FLAGS)
    if changed:
        raise UsageError(
            f"--resume continues a run as it was configured, so it takes no {', '.join('--' + c.replace('_', '-') for c in changed)}",
            hint="to train on with other settings, start a new run with --init-from RUN/last.safetensors",
        )
    recipe = {name: value for name, value in saved.items() if name in TrainConfig.model_fields}
    recipe.update({name: value for name, value in flags.items() if value is not None})
    try:
        return TrainConfig(**recipe)
    except ValidationError as err:
        # a damaged input file, as bad JSON in it is: exit 2 for both
        raise InputFileError(f"the run's config.json is not a valid configuration ({err.errors()[0]['msg']})") from None


def _setting_error(field: str, value: Any, message: str, source: Source | None) -> SpeccError:
    """The error for a bad value: at the spec setting when `source` is given, else of the flag."""
    hint = None
    choices = {
        "optimizer": OPTIMIZERS,
        "schedule": SCHEDULES,
        "loss": LOSSES,
        "augment": AUGMENTATIONS,
        "device": DEVICES,
        "precision": PRECISIONS,
    }.get(field)
    if choices:
        words = TrainConfig._split_commas(value) if isinstance(value, str) else value if isinstance(value, list) else [value]
        unknown = next((str(w) for w in words if w not in choices), str(value))
        suggestion = _suggest(unknown, choices)
        hint = f"{suggestion + ' ' if suggestion else ''}choose from {', '.join(choices)}"
        message = f"unknown {'augmentation' if field == 'augment' else field} '{unknown}'"
    if source is not None:
        key = next((k for k, v in SPEC_ALIASES.items() if v == field and _spec_span(source, k, "key")), field)
        return SpeccError(f"train setting {key}: {message}", _spec_span(source, key, "value"), hint, source=source)
    return UsageError(f"--{field.replace('_', '-')} {value}: {message}", hint)


def _spec_span(source: Source | None, key: str, part: str) -> Span | None:
    """Where the spec writes setting `key` (its name or its value); the IR keeps values only."""
    if source is None:
        return None
    from ..parse import parse

    for setting in parse(source.text, source.path).train:
        if setting.key.text == key:
            return setting.key.span if part == "key" else setting.value.span
    return None


def _suggest(word: str, candidates) -> str | None:
    from ..expand import did_you_mean

    return did_you_mean(word, candidates)
