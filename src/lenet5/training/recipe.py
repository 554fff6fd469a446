"""The training recipe: what a run is told (`TrainConfig`), and the optimiser, learning-rate
schedule and seeds it names.

`None` in a `TrainConfig` means "the model's default" (`lenet5.zoo.models.TrainingDefaults`);
`resolved()` fills those in and checks every value, so a bad setting is a one-line error
before any data is loaded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

import numpy as np

from ..errors import Lenet5Error
from ..fast.flat import FlatOptimizer
from ..nn import SDLM, SGD, Adam, AdamW, Optimizer
from ..nn.schedules import ConstantLR, CosineLR, EpochListLR, ExponentialLR, StepLR
from ..zoo.lecun1998 import PAPER_LEARNING_RATES, SDLM_MU
from ..zoo.models import MODELS, get_spec, second_order_gap

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "sdlm")
SCHEDULES = ("constant", "step", "exponential", "cosine", "lecun1998")
# "shuffle": a new permutation each epoch; "fixed": one permutation, drawn once from the
# run's seed and reused every epoch (LeCun et al. 1998, appendix C: "a constant random order").
ORDERS = ("shuffle", "fixed")
# The settings a model's TrainingDefaults supplies when the config leaves them None.
DEFAULTED = ("epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "schedule", "augment",
             "augment_strength", "augment_delay", "clean_epochs", "order", "validation")


@dataclass
class TrainConfig:
    """Everything that decides a run; saved in the checkpoint so `--resume` needs nothing else.

    `backend` is the fast engine's ("compiled" or "numpy", `lenet5.fast.backends`): they
    round differently, so a resumed run keeps it too; a run saved before there was a choice
    trained on "numpy". The compiled kernels' thread count changes no result and is not saved.
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
    augment: str | None = None  # a distortion of lenet5.data.augment.KINDS
    augment_strength: float | None = None  # its ranges' multiple: 1 the usual, 0 none
    augment_delay: int | None = None  # epochs trained on the images as drawn before distortions start
    clean_epochs: int | None = None  # the last epochs, trained on the images as drawn after the distortions
    order: str | None = None  # one of ORDERS
    loss: str | None = None  # one of the model's `ModelSpec.losses`; None: its own (map for lenet5-1998)
    mu: float = SDLM_MU  # SDLM's μ: the step is lr / (mu + h) (LeCun et al. 1998, appendix C)
    validation: int | None = None  # training images held out; the model's default (5000; 0 for lenet5-1998)
    seed: int = 0
    train_limit: int | None = None  # use only the first N training images (tests, quick looks)
    test_limit: int | None = None
    backend: str = "numpy"
    # Evaluate the test set after every epoch, for curves and time to accuracy; it picks
    # nothing (the validation set does) and draws no random numbers, so it may change on resume.
    track_test: bool = False

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """The config saved as `asdict(config)` (by this or an older lenet5: `upgrade_saved`);
        keys it does not know are ignored."""
        values = upgrade_saved(values)
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})

    def resolved(self) -> "TrainConfig":
        """A copy with the model's defaults in place of None, validated."""
        defaults = get_spec(self.model).defaults
        values = asdict(self)
        for name in DEFAULTED:
            if values[name] is None:
                values[name] = getattr(defaults, name)
        if values["loss"] is None:
            values["loss"] = get_spec(self.model).loss
        config = TrainConfig(**values)
        config.validate()
        return config

    def validate(self) -> None:
        get_spec(self.model).check_loss(self.loss)
        if self.optimizer not in OPTIMIZERS:
            raise Lenet5Error(f"unknown optimizer {self.optimizer!r}; known: {', '.join(OPTIMIZERS)}")
        if self.optimizer == "sdlm":
            gap = second_order_gap(self.model)
            if gap is not None:
                able = [name for name in MODELS if second_order_gap(name) is None]
                raise Lenet5Error(f"optimizer 'sdlm' cannot train model {self.model!r}: {gap}, which SDLM's "
                                  f"steps need; only {', '.join(able)} can use it; choose another optimizer")
        if self.schedule not in SCHEDULES:
            raise Lenet5Error(f"unknown schedule {self.schedule!r}; known: {', '.join(SCHEDULES)}")
        if self.order not in ORDERS:
            raise Lenet5Error(f"unknown order {self.order!r}; known: {', '.join(ORDERS)}")
        if not (isinstance(self.mu, (int, float)) and self.mu > 0):
            raise Lenet5Error(f"mu must be > 0, found {self.mu!r}")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise Lenet5Error(f"{name} must be a positive integer, found {value!r}")
        if self.backend not in ("compiled", "numpy"):
            raise Lenet5Error(f"unknown backend {self.backend!r}; known: compiled, numpy")
        if not self.lr > 0:
            raise Lenet5Error(f"lr must be > 0, found {self.lr!r}")
        from ..data.augment import KINDS, MAX_STRENGTH

        if self.augment not in KINDS:
            raise Lenet5Error(f"unknown augment {self.augment!r}; known: {', '.join(KINDS)}")
        if not (isinstance(self.augment_strength, (int, float)) and 0 <= self.augment_strength <= MAX_STRENGTH):
            raise Lenet5Error(f"augment_strength must be a number in 0..{MAX_STRENGTH:g}, "
                              f"found {self.augment_strength!r}")
        if not (isinstance(self.augment_delay, int) and self.augment_delay >= 0):
            raise Lenet5Error(f"augment_delay must be an integer >= 0 (epochs), found {self.augment_delay!r}")
        if not (isinstance(self.clean_epochs, int) and self.clean_epochs >= 0):
            raise Lenet5Error(f"clean_epochs must be an integer >= 0 (epochs), found {self.clean_epochs!r}")
        if self.validation < 0:
            raise Lenet5Error(f"validation must be >= 0, found {self.validation!r}")


def upgrade_saved(values: dict[str, Any]) -> dict[str, Any]:
    """A config saved by an older lenet5, in today's fields, so an old run resumes as it was
    started: `augment_shift`, a number of pixels, becomes the shift distortion of that many
    pixels, at full strength from the first step; the settings added since take the values
    that give what that lenet5 did (a new permutation each epoch, no test tracking,
    distortions to the end, the model's own loss)."""
    values = dict(values)
    if "augment" not in values and "augment_strength" not in values and "augment_shift" in values:
        from ..data.augment import SHIFT_PIXELS

        pixels = values["augment_shift"]
        if isinstance(pixels, int) and not isinstance(pixels, bool):  # else the checks name it missing
            values["augment"] = "shift" if pixels else "none"
            values["augment_strength"] = pixels / SHIFT_PIXELS
            values.setdefault("augment_delay", 0)
    for name, then in (("track_test", False), ("order", "shuffle"), ("mu", TrainConfig.mu), ("clean_epochs", 0),
                       ("backend", "numpy")):
        values.setdefault(name, then)
    model = values.get("model")
    spec = MODELS.get(model) if isinstance(model, str) else None
    values["loss"] = spec.saved_loss(values) if spec else values.get("loss")  # an unknown model is named later
    return values


def saved_processes(values: dict[str, Any]) -> int:
    """The processes a saved config's batches were split over: its `workers`, which lenet5
    wrote until its data-parallel engine was retired, else 1. Training runs in one process
    now, so a new run writes no count; an old run's is read only to say that a resume in one
    process will not repeat its sums bit for bit."""
    workers = values.get("workers", 1)
    return workers if isinstance(workers, int) and not isinstance(workers, bool) and workers > 1 else 1


class Seeds(NamedTuple):
    """One seed per random stream, so each stream is reproducible on its own."""

    init: int  # the model's weights (and its dropout layers' generators)
    shuffle: int  # the permutation of each epoch
    augment: int  # the training distortions
    curvature: int  # the patterns SDLM's curvature is estimated on before each pass


def seeds(config: TrainConfig) -> Seeds:
    # generate_state(n) extends generate_state(n - 1), so a new stream leaves the others' seeds alone.
    return Seeds(*(int(s) for s in np.random.SeedSequence(config.seed).generate_state(len(Seeds._fields))))


def make_optimizer(config: TrainConfig, parameters) -> FlatOptimizer:
    """The run's optimiser, stepping its parameters as one flat buffer (`FlatOptimizer`: the
    same numbers, bit for bit, in a handful of NumPy calls a step, or one compiled loop on the
    compiled backend)."""
    return FlatOptimizer(_reference_optimizer(config, parameters), compiled=config.backend == "compiled")


def _reference_optimizer(config: TrainConfig, parameters) -> Optimizer:
    decay = config.weight_decay or 0.0
    if config.optimizer == "sgd":
        return SGD(parameters, lr=config.lr, weight_decay=decay)
    if config.optimizer in ("momentum", "nesterov"):
        return SGD(parameters, lr=config.lr, momentum=config.momentum or 0.9,
                   nesterov=config.optimizer == "nesterov", weight_decay=decay)
    if config.optimizer == "sdlm":
        return SDLM(parameters, lr=sdlm_step_scale(config) * config.lr, mu=config.mu, weight_decay=decay)
    if config.optimizer == "adamw":
        return AdamW(parameters, lr=config.lr, weight_decay=decay)
    return Adam(parameters, lr=config.lr, weight_decay=decay)


def sdlm_step_scale(config: TrainConfig) -> int:
    """What SDLM's η is multiplied by on a batch: its size.

    The paper's η is a per-pattern step: each pattern moves θ_k by η·g_k/(μ + h_kk), h being
    the average curvature of one pattern's loss. A batch's gradient is the mean over its B
    patterns, so B per-pattern steps move about B times as far as one step on that mean: the
    step is scaled to η·B/(μ + h), and `--batch-size 1` is the paper's procedure exactly.
    """
    return config.batch_size if config.optimizer == "sdlm" else 1


def make_schedule(config: TrainConfig):
    """The learning rate of each epoch: `schedule(epoch) -> lr`; for SDLM, the step is scaled
    by the batch size (`sdlm_step_scale`), so `lr` and the schedule keep the paper's η."""
    lr = sdlm_step_scale(config) * config.lr
    if config.schedule == "step":
        return StepLR(lr, step_size=max(1, config.epochs // 3), gamma=0.1)
    if config.schedule == "exponential":
        return ExponentialLR(lr, gamma=0.9)
    if config.schedule == "cosine":
        return CosineLR(lr, total_epochs=config.epochs, min_lr=lr * 0.01)
    if config.schedule == "lecun1998":
        # The paper's rates are for its stochastic diagonal Levenberg-Marquardt method; here
        # they keep their ratios, scaled so the first equals the requested lr (for SDLM at
        # lr 0.0005, the paper's rates themselves).
        rates = PAPER_LEARNING_RATES
        return EpochListLR([lr * rate / rates[0] for rate in rates])
    return ConstantLR(lr)
