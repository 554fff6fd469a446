"""Inverted dropout: scale at training time so evaluation is the identity."""

from __future__ import annotations

import numpy as np

from .init import as_generator
from .module import Module


class Dropout(Module):
    """Zero each input with probability p while training and scale survivors by 1/(1 − p).

    Args:
        p: drop probability in [0, 1). rng: a Generator or seed; the masks it draws are the
            only randomness, so a seed makes training reproducible.

    Shape: any -> same. In eval mode the layer is the identity.
    """

    prefix = "dropout"

    def __init__(self, p: float = 0.5, rng=None) -> None:
        super().__init__()
        if not (isinstance(p, (int, float)) and 0 <= p < 1):
            raise ValueError(f"Dropout: p must be in [0, 1), found {p!r}")
        self.p = float(p)
        self.rng = as_generator(rng)
        self._mask = None

    def draw_keep_mask(self, shape) -> np.ndarray:
        """True where an input of that shape survives: one uniform draw per element."""
        return self.rng.random(shape, dtype=np.float32) >= self.p

    def forward(self, x):
        if not self.training or self.p == 0:
            self._mask = None
            return x
        self._mask = self.draw_keep_mask(x.shape).astype(x.dtype) * (1.0 / (1.0 - self.p))
        return x * self._mask

    def backward(self, dout):
        return dout if self._mask is None else dout * self._mask

    def extra_repr(self):
        return f"p={self.p}"
