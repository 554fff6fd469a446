"""Training-time augmentation: random translations, the cheapest of LeCun's distortions."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def random_shift(images: np.ndarray, max_shift: int, rng: np.random.Generator, fill: float = 0.0) -> np.ndarray:
    """Each image moved by its own random (dy, dx) in [−max_shift, max_shift], the uncovered
    border filled with `fill` (the preprocessed background value).

    Shape: (N, C, H, W) -> (N, C, H, W). One gather over a strided view, no loop over images.
    """
    if max_shift <= 0:
        return images
    count, channels, height, width = images.shape
    padded = np.full((count, channels, height + 2 * max_shift, width + 2 * max_shift), fill, images.dtype)
    padded[:, :, max_shift: max_shift + height, max_shift: max_shift + width] = images
    windows = sliding_window_view(padded, (height, width), axis=(2, 3))  # (N, C, 2s+1, 2s+1, H, W)
    dy = rng.integers(0, 2 * max_shift + 1, count)
    dx = rng.integers(0, 2 * max_shift + 1, count)
    return windows[np.arange(count), :, dy, dx]
