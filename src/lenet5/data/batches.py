"""Validation splits and mini-batches: seeded, every sample once per epoch."""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np


def train_validation_split(images, labels, validation, seed: int = 0):
    """(train_x, train_y, val_x, val_y): `validation` samples (an int) or fraction (a float)
    drawn at random by `seed` from the training set; 0 gives an empty validation set."""
    count = len(images)
    if len(labels) != count:
        raise ValueError(f"train_validation_split: {count} images but {len(labels)} labels")
    size = int(round(validation * count)) if isinstance(validation, float) else int(validation)
    if not 0 <= size < count:
        raise ValueError(f"train_validation_split: validation must leave training data, found {validation!r} of {count}")
    order = np.random.default_rng(seed).permutation(count)
    val_index, train_index = np.sort(order[:size]), np.sort(order[size:])
    return images[train_index], labels[train_index], images[val_index], labels[val_index]


def num_batches(count: int, batch_size: int, drop_last: bool = False) -> int:
    return count // batch_size if drop_last else math.ceil(count / batch_size)


def iterate_minibatches(images, labels, batch_size: int, rng: np.random.Generator | None = None,
                        shuffle: bool = True, drop_last: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Mini-batches drawn without replacement: a new permutation from `rng` on each call, every
    sample exactly once, the last partial batch kept unless `drop_last`."""
    count = len(images)
    if len(labels) != count:
        raise ValueError(f"iterate_minibatches: {count} images but {len(labels)} labels")
    if not (isinstance(batch_size, (int, np.integer)) and batch_size > 0):
        raise ValueError(f"iterate_minibatches: batch_size must be a positive int, found {batch_size!r}")
    order = (rng if rng is not None else np.random.default_rng()).permutation(count) if shuffle else np.arange(count)
    stop = num_batches(count, batch_size, drop_last) * batch_size
    for start in range(0, min(stop, count), batch_size):
        index = order[start: start + batch_size]
        yield images[index], labels[index]
