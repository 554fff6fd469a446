"""Learning-rate schedules as pure functions of the epoch, so resuming needs no state.

`schedule(epoch)` gives the learning rate for epoch `epoch` (0-based).
"""

from __future__ import annotations

import math
from typing import Sequence


class Schedule:
    def __init__(self, base_lr: float) -> None:
        if not base_lr > 0:
            raise ValueError(f"{type(self).__name__}: base_lr must be > 0, found {base_lr!r}")
        self.base_lr = float(base_lr)

    def __call__(self, epoch: int) -> float:
        raise NotImplementedError


class ConstantLR(Schedule):
    def __call__(self, epoch):
        return self.base_lr


class StepLR(Schedule):
    """lr · gamma^floor(epoch / step_size)."""

    def __init__(self, base_lr, step_size: int, gamma: float = 0.1):
        super().__init__(base_lr)
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, found {step_size!r}")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def __call__(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialLR(Schedule):
    """lr · gamma^epoch."""

    def __init__(self, base_lr, gamma: float):
        super().__init__(base_lr)
        self.gamma = float(gamma)

    def __call__(self, epoch):
        return self.base_lr * self.gamma**epoch


class CosineLR(Schedule):
    """min_lr + (lr − min_lr)·(1 + cos(π·epoch / total_epochs)) / 2 (Loshchilov & Hutter 2017)."""

    def __init__(self, base_lr, total_epochs: int, min_lr: float = 0.0):
        super().__init__(base_lr)
        if total_epochs < 1:
            raise ValueError(f"CosineLR: total_epochs must be >= 1, found {total_epochs!r}")
        self.total_epochs, self.min_lr = int(total_epochs), float(min_lr)

    def __call__(self, epoch):
        progress = min(epoch, self.total_epochs) / self.total_epochs
        return self.min_lr + (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * progress)) / 2


class EpochListLR(Schedule):
    """An explicit rate per epoch; the last one holds after the list ends (the 1998 paper's
    are `lenet5.zoo.lecun1998.PAPER_LEARNING_RATES`)."""

    def __init__(self, rates: Sequence[float]):
        if not rates or not all(r > 0 for r in rates):
            raise ValueError(f"EpochListLR: rates must be a non-empty list of positive numbers, found {rates!r}")
        super().__init__(rates[0])
        self.rates = [float(r) for r in rates]

    def __call__(self, epoch):
        return self.rates[min(epoch, len(self.rates) - 1)]
