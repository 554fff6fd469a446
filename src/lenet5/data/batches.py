"""Validation splits and mini-batches: seeded, every sample exactly once per epoch."""

from __future__ import annotations

import math
import numbers
from typing import Iterator

import numpy as np


def train_validation_split(images: np.ndarray, labels: np.ndarray, validation: int | float, seed: int = 0):
    """Hold out a random validation set, the same one for the same `seed`.

    Args:
        validation: a count (int) or a fraction of the samples (float in [0, 1)); 0 gives
            an empty validation set. At least one sample is left for training.

    Returns (train_x, train_y, val_x, val_y), each part in the original order.
    """
    count = len(images)
    if len(labels) != count:
        raise ValueError(f"train_validation_split: {count} images but {len(labels)} labels")
    if isinstance(validation, bool) or not isinstance(validation, numbers.Real):
        raise ValueError(f"train_validation_split: validation must be a count or a fraction, found {validation!r}")
    if isinstance(validation, numbers.Integral):
        size = int(validation)
    elif 0 <= validation < 1:
        size = int(round(float(validation) * count))
    else:
        raise ValueError(f"train_validation_split: a fraction must be in [0, 1), found {validation!r}")
    if size < 0:
        raise ValueError(f"train_validation_split: validation must be >= 0, found {validation!r}")
    if size and size >= count:
        raise ValueError(f"train_validation_split: a validation set of {validation!r} leaves no training "
                         f"samples (of {count})")
    held_out = np.zeros(count, dtype=bool)
    held_out[np.random.default_rng(seed).permutation(count)[:size]] = True
    return images[~held_out], labels[~held_out], images[held_out], labels[held_out]


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """How many batches `iterate_minibatches` yields for `n` samples."""
    return n // batch_size if drop_last else math.ceil(n / batch_size)


def iterate_minibatches(images: np.ndarray, labels: np.ndarray, batch_size: int,
                        rng: np.random.Generator | None = None, shuffle: bool = True,
                        drop_last: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(x, y) mini-batches drawn without replacement: a new permutation of `rng` on each call
    (so each epoch has its own order), every sample exactly once, the last partial batch kept
    unless `drop_last`. With `shuffle=False` the order is the stored one.
    The permutation is drawn when iteration starts.

    Shape: x is images[index], y is labels[index] for `batch_size` indices (fewer at the end).
    """
    count = len(images)
    if len(labels) != count:
        raise ValueError(f"iterate_minibatches: {count} images but {len(labels)} labels")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
        raise ValueError(f"iterate_minibatches: batch_size must be a positive int, found {batch_size!r}")
    return _batches(images, labels, batch_size, rng, shuffle, drop_last)  # arguments checked now, not lazily


def _batches(images, labels, batch_size, rng, shuffle, drop_last):
    count = len(images)
    order = (rng if rng is not None else np.random.default_rng()).permutation(count) if shuffle else np.arange(count)
    for start in range(0, num_batches(count, batch_size, drop_last) * batch_size, batch_size):
        index = order[start: start + batch_size]
        yield images[index], labels[index]  # fresh arrays: a caller may change a batch in place
