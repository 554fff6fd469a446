"""The engine protocol: what a trainer, an evaluator or a service may ask of an engine.

An engine runs a reference model (`lenet5.nn`), sharing its parameters: the optimiser,
`state_dict()` and `train()`/`eval()` act on the model whichever engine runs it. Two stand
behind this protocol today, `FastModel` (one process; NumPy or compiled kernels, `backend=`)
and `DataParallel` (each batch split over processes); a new one answers the same calls.

A distortion is a `Transform`: anything with `apply(x, start) -> x` on a batch-first batch.
The engine applies it to the batch it is given (a data-parallel engine to each process's
rows, rebuilt in each process from its words: a `WordTransform`), so the trainer never
needs to know where a batch is computed, and this package never needs to know what a
distortion is (`lenet5.data.augment.Distortion` is one).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Transform(Protocol):
    def apply(self, x: np.ndarray, start: int = 0) -> np.ndarray:
        """The batch (N, C, H, W), transformed; the same rows in the same order. `start`: the
        row of the whole batch that x's first row is (a process's share of it)."""


@runtime_checkable
class WordTransform(Transform, Protocol):
    """A transform that crosses to another process as a few int64 words."""

    def to_words(self) -> tuple[int, ...]:
        ...

    @classmethod
    def from_words(cls, words) -> "WordTransform | None":
        """The transform of `to_words`; None for all-zero words (no transform)."""


@runtime_checkable
class Engine(Protocol):
    def forward(self, x: np.ndarray, distortion: Transform | None = None) -> np.ndarray:
        """Logits (N, K) of a batch-first batch, in the model's mode, kept for `backward`."""

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Add the gradients of the last forward's logits `dout` to every parameter's `grad`;
        the input's gradient, or None with `input_grad=False`."""

    def predict_logits(self, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Logits of the eval-mode model, any number of samples; the mode is put back after."""

    def parameters(self) -> list:
        """The model's parameters (each a `lenet5.nn.Parameter`: value and grad)."""

    def train(self, mode: bool = True) -> "Engine":
        ...

    def eval(self) -> "Engine":
        ...

    def close(self) -> None:
        """Release what the engine holds (processes, shared memory); idempotent."""
