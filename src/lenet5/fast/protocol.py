"""The engine protocol: what a trainer, an evaluator or a service may ask of an engine.

An engine runs a reference model (`lenet5.nn`), sharing its parameters: the optimiser,
`state_dict()` and `train()`/`eval()` act on the model whichever engine runs it. `FastModel`
stands behind this protocol (NumPy or compiled kernels, `backend=`); a new engine answers
the same calls.

A distortion is a `Transform`: anything with `apply(x) -> x` on a batch-first batch. The
engine applies it to the batch it is given, so this package never needs to know what a
distortion is (`lenet5.data.augment.Distortion` is one).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Transform(Protocol):
    def apply(self, x: np.ndarray) -> np.ndarray:
        """The batch (N, C, H, W), transformed; the same rows in the same order."""


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
        """Release what the engine holds beyond the model (a device's memory, worker threads
        or processes); the caller stops using it. Calling it twice is harmless."""
