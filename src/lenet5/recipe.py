"""The training recipe: what a run is told (`TrainConfig`), and the optimiser, learning-rate
schedule and seeds it names.

`None` in a `TrainConfig` means "the model's default" (`lenet5.models.TrainingDefaults`);
`resolved()` fills those in and checks every value, so a bad setting is a one-line error
before any data is loaded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

import numpy as np

from .errors import Lenet5Error
from .models import get_spec
from .nn import SGD, Adam, AdamW, Optimizer
from .nn.schedules import ConstantLR, CosineLR, EpochListLR, ExponentialLR, StepLR

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")
SCHEDULES = ("constant", "step", "exponential", "cosine", "lecun1998")
# The settings a model's TrainingDefaults supplies when the config leaves them None.
DEFAULTED = ("epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "schedule", "augment_shift")


@dataclass
class TrainConfig:
    """Everything that decides a run; saved in the checkpoint so `--resume` needs nothing else.

    `workers` is the number of processes each batch is split over: results with 2 equal one
    process's only up to rounding, so a resumed run keeps the count it was saved with.
    """

    model: str = "lenet5"
    dataset: str = "mnist"
    epochs: int | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    schedule: str | None = None
    augment_shift: int | None = None
    validation: int = 5000
    seed: int = 0
    train_limit: int | None = None  # use only the first N training images (tests, quick looks)
    test_limit: int | None = None
    workers: int = 1

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """The config saved as `asdict(config)`; keys it does not know are ignored."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})

    def resolved(self) -> "TrainConfig":
        """A copy with the model's defaults in place of None, validated."""
        defaults = get_spec(self.model).defaults
        values = asdict(self)
        for name in DEFAULTED:
            if values[name] is None:
                values[name] = getattr(defaults, name)
        config = TrainConfig(**values)
        config.validate()
        return config

    def validate(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise Lenet5Error(f"unknown optimizer {self.optimizer!r}; known: {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise Lenet5Error(f"unknown schedule {self.schedule!r}; known: {', '.join(SCHEDULES)}")
        for name in ("epochs", "batch_size", "workers"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise Lenet5Error(f"{name} must be a positive integer, found {value!r}")
        if not self.lr > 0:
            raise Lenet5Error(f"lr must be > 0, found {self.lr!r}")
        if not (isinstance(self.augment_shift, int) and 0 <= self.augment_shift <= 8):
            raise Lenet5Error(f"augment_shift must be an integer in 0..8, found {self.augment_shift!r}")
        if self.validation < 0:
            raise Lenet5Error(f"validation must be >= 0, found {self.validation!r}")


class Seeds(NamedTuple):
    """One seed per random stream, so each stream is reproducible on its own."""

    init: int  # the model's weights (and its dropout layers' generators)
    shuffle: int  # the permutation of each epoch
    augment: int  # the random shifts


def seeds(config: TrainConfig) -> Seeds:
    return Seeds(*(int(s) for s in np.random.SeedSequence(config.seed).generate_state(3)))


def make_optimizer(config: TrainConfig, parameters) -> Optimizer:
    decay = config.weight_decay or 0.0
    if config.optimizer == "sgd":
        return SGD(parameters, lr=config.lr, weight_decay=decay)
    if config.optimizer in ("momentum", "nesterov"):
        return SGD(parameters, lr=config.lr, momentum=config.momentum or 0.9,
                   nesterov=config.optimizer == "nesterov", weight_decay=decay)
    if config.optimizer == "adamw":
        return AdamW(parameters, lr=config.lr, weight_decay=decay)
    return Adam(parameters, lr=config.lr, weight_decay=decay)


def make_schedule(config: TrainConfig):
    """The learning rate of each epoch: `schedule(epoch) -> lr`."""
    if config.schedule == "step":
        return StepLR(config.lr, step_size=max(1, config.epochs // 3), gamma=0.1)
    if config.schedule == "exponential":
        return ExponentialLR(config.lr, gamma=0.9)
    if config.schedule == "cosine":
        return CosineLR(config.lr, total_epochs=config.epochs, min_lr=config.lr * 0.01)
    if config.schedule == "lecun1998":
        # The paper's rates are for its stochastic diagonal Levenberg-Marquardt method; here
        # they keep their ratios, scaled so the first equals the requested lr.
        rates = EpochListLR.lecun_1998().rates
        return EpochListLR([config.lr * rate / rates[0] for rate in rates])
    return ConstantLR(config.lr)
