"""Constructor and input-shape validation shared by the layers, so every message reads alike."""

from __future__ import annotations

import numpy as np


def positive_int(value, name: str, layer: str) -> int:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0:
        return int(value)
    raise ValueError(f"{layer}: {name} must be a positive int, found {value!r}")


def check_input(layer, x: np.ndarray, ndim: int, expected: str, channels: int | None = None) -> None:
    """Raise ValueError naming the layer, the expected shape and the one found; `channels`
    is the size axis 1 must have."""
    if x.ndim != ndim or (channels is not None and x.shape[1] != channels):
        raise ValueError(f"{layer!r}: expected input of shape {expected}, found {x.shape}")


def as_float(x) -> np.ndarray:
    """Keep float32 and float64; everything else (uint8 images, ints, float16) becomes float32."""
    x = np.asarray(x)
    if x.dtype == np.float32 or x.dtype == np.float64:
        return x
    return x.astype(np.float32)
