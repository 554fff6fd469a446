"""A trainable array, its gradient and its curvature, kept together so optimisers need no bookkeeping."""

from __future__ import annotations

import numpy as np


class Parameter:
    """A trainable array and the gradient of the loss with respect to it.

    Args:
        value: the initial value; stored as a float array (float32 unless given float64).
        name: the attribute name inside its layer (`weight`, `bias`); models prefix it with
            the layer's name to give dotted names like `conv1.weight`.

    `grad` has the shape and dtype of `value` and accumulates across `backward` calls, as in
    PyTorch, until an optimiser's `zero_grad()` clears it. `curvature`, of the same shape,
    accumulates the Gauss–Newton diagonal second derivative ∂²E/∂w² across
    `backward_curvature` calls until `zero_curvature()` clears it (SDLM's h_kk, see
    `curvature.estimate_curvature`).
    """

    __slots__ = ("value", "grad", "curvature", "name")

    def __init__(self, value: np.ndarray, name: str = "") -> None:
        value = np.asarray(value)
        if value.dtype != np.float64:
            value = value.astype(np.float32)
        self.value = np.ascontiguousarray(value)
        self.grad = np.zeros_like(self.value)
        self.curvature = np.zeros_like(self.value)
        self.name = name

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    @property
    def size(self) -> int:
        return self.value.size

    def zero_grad(self) -> None:
        self.grad.fill(0.0)

    def zero_curvature(self) -> None:
        self.curvature.fill(0.0)

    def astype(self, dtype) -> None:
        """Convert value, gradient and curvature to `dtype` (used for float64 gradient checks)."""
        self.value = self.value.astype(dtype)
        self.grad = self.grad.astype(dtype)
        self.curvature = self.curvature.astype(dtype)

    def __repr__(self) -> str:
        return f"Parameter(name={self.name!r}, shape={self.shape}, dtype={self.value.dtype})"
