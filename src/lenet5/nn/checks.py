"""Constructor and input-shape validation shared by the layers, so every message reads alike."""

from __future__ import annotations

import numpy as np

from .layout import public_shape


def positive_int(value, name: str, layer: str) -> int:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0:
        return int(value)
    raise ValueError(f"{layer}: {name} must be a positive int, found {value!r}")


def check_input(layer, x: np.ndarray, ndim: int, expected: str, channels: int | None = None) -> None:
    """Raise ValueError naming the layer, the expected (batch-first) shape and the one found.

    `x` is batch-last; the message shows the batch-first shape the user passed.
    """
    found = public_shape(x.shape) if x.ndim >= 1 else x.shape
    if x.ndim != ndim or (channels is not None and x.shape[0] != channels):
        raise ValueError(f"{layer!r}: expected input of shape {expected}, found {found}")
