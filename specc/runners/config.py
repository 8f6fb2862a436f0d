"""What a training run does: one validated configuration, from defaults, the spec and flags.

The spec's `train { ... }` section holds the recipe (epochs, optimiser,
schedule, augmentation...); command-line flags override it; `config.json`
in a run directory holds the result, so that `--resume` needs nothing else.
Each setting is declared once, in `train_settings.SETTINGS`; the model here
is derived from it. A bad spec setting is reported by `specc check`, with its
line and column (`train_settings.read_section`); a bad flag here, by its name.
No torch here: a mistake in the recipe is reported before torch is imported.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from ..errors import InputFileError, SpeccError, UsageError
from ..train_settings import BY_NAME, SETTINGS, SPEC_NAMES, TrainSetting, flag_value

# The learning rate each optimiser is usually started with, when neither spec nor flag gives one.
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "adagrad": 0.01, "rmsprop": 1e-3, "adam": 1e-3, "adamw": 1e-3}


class _Derived(BaseModel):
    """What TrainConfig computes from its fields, which come from `train_settings.SETTINGS`."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    @property
    def decay(self) -> float:
        # AdamW without decay is Adam; torch's AdamW starts at 0.01 for that reason.
        if self.weight_decay is not None:
            return self.weight_decay
        return 0.01 if self.optimizer == "adamw" else 0.0


def _field(setting: TrainSetting) -> tuple[Any, Any]:
    """A setting as a pydantic field: its type, default and bounds."""
    one = {"int": int, "number": float, "text": str, "switch": bool}.get(setting.type) or Literal[setting.choices]
    annotation = list[one] if setting.type == "words" else one
    if setting.optional:
        annotation = annotation | None
    default = list(setting.default) if setting.type == "words" else setting.default
    return annotation, Field(default, ge=setting.minimum, gt=setting.above, lt=setting.below, description=setting.help)


# Every setting of a run. `None` means "the optimiser's usual value" (see `learning_rate`).
TrainConfig = create_model("TrainConfig", __base__=_Derived, __module__=__name__, **{s.name: _field(s) for s in SETTINGS})

SPEC_KEYS = tuple(s.name for s in SETTINGS if s.in_spec)  # what a spec's train section may hold
RESUME_FLAGS = tuple(s.name for s in SETTINGS if s.on_resume)  # what --resume may change: where the run executes


def resolve(spec_train: dict[str, Any], flags: dict[str, Any]) -> TrainConfig:
    """Defaults, overridden by the spec's train section, overridden by flags.

    `spec_train` is `Network.train`, which `specc check` has checked where it is written;
    `flags` holds the flags as parsed, None meaning not given. A bad flag is named.
    """
    settings = {SPEC_NAMES.get(key, key): value for key, value in spec_train.items()}
    settings.update({name: flag_value(name, value) for name, value in flags.items() if value is not None})
    try:
        return TrainConfig(**settings)
    except ValidationError as err:  # a train dict written by hand in Python, not through a spec
        problem = err.errors()[0]
        raise SpeccError(f"train setting {'.'.join(map(str, problem['loc']))}: {problem['msg']}", hint="see specc train --help") from None


def from_saved(saved: dict, flags: dict[str, Any]) -> TrainConfig:
    """The configuration in a run's config.json, with the flags --resume allows."""
    changed = sorted(name for name, value in flags.items() if value is not None and name not in RESUME_FLAGS)
    if changed:
        raise UsageError(
            f"--resume continues a run as it was configured, so it takes no {', '.join(BY_NAME[c].flag for c in changed)}",
            hint="to train on with other settings, start a new run with --init-from RUN/last.safetensors",
        )
    recipe = {name: value for name, value in saved.items() if name in TrainConfig.model_fields}
    recipe.update({name: flag_value(name, value) for name, value in flags.items() if value is not None})
    try:
        return TrainConfig(**recipe)
    except ValidationError as err:
        # a damaged input file, as bad JSON in it is: exit 2 for both
        raise InputFileError(f"the run's config.json is not a valid configuration ({err.errors()[0]['msg']})") from None
