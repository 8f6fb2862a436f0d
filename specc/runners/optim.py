"""Optimisers and learning-rate schedules: what `optimizer=`, `schedule=` and weight decay build.

Apart from the loop (train.py) because they are plain functions of a TrainConfig that tests and the
lecture comparisons call on their own.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..ir import Network
from .config import TrainConfig


def decayed(network: Network, module: nn.Module) -> set[int]:
    """ids of the parameters that get weight decay: those each layer's kind names (conv and fc weights)."""
    return {id(getattr(module.get_submodule(layer.name), name)) for layer in network.layers() for name in layer.kind.decays}


def build_optimizer(params: list[nn.Parameter], config: TrainConfig, decay: set[int]) -> torch.optim.Optimizer:
    """The optimiser of `config` over `params`; only the parameters in `decay` (by id) get weight decay, as in timm."""
    decayed = [p for p in params if id(p) in decay]
    others = [p for p in params if id(p) not in decay]
    groups = [g for g in ({"params": decayed, "weight_decay": config.decay}, {"params": others, "weight_decay": 0.0}) if g["params"]]
    lr, momentum = config.learning_rate, config.momentum
    match config.optimizer:
        case "sgd":
            return torch.optim.SGD(groups, lr)
        case "momentum":
            return torch.optim.SGD(groups, lr, momentum=momentum)
        case "nesterov":
            return torch.optim.SGD(groups, lr, momentum=momentum, nesterov=True)
        case "adagrad":
            return torch.optim.Adagrad(groups, lr)
        case "rmsprop":
            return torch.optim.RMSprop(groups, lr)
        case "adam":  # weight decay as an L2 term in the gradient, as the lectures teach
            return torch.optim.Adam(groups, lr)
        case "adamw":  # weight decay decoupled from the gradient (Loshchilov and Hutter)
            return torch.optim.AdamW(groups, lr)
    raise AssertionError(config.optimizer)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int):
    """The learning-rate schedule, stepped once per batch."""
    if config.schedule == "onecycle":
        # Cycling momentum (or Adam's beta1) is part of the method, where the optimiser has one to cycle.
        cycle = config.optimizer in ("momentum", "nesterov", "adam", "adamw")
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, config.learning_rate, total_steps=max(total_steps, 2), cycle_momentum=cycle)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(config.schedule, step, total_steps))


def lr_factor(schedule: str, step: int, total: int) -> float:
    """The learning rate at `step` of `total`, as a fraction of the configured one."""
    if schedule == "step":  # divided by 10 at half and three quarters of training
        return 0.1 ** ((step >= total // 2) + (step >= total * 3 // 4))
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))
    return 1.0
