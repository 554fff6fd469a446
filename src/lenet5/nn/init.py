"""Weight initialisers, all drawing from one `numpy.random.Generator` so a seed fixes a model.

Each takes `(shape, fan_in, fan_out, rng)` and returns a float32 array; `initializer(name)`
looks one up by name for layer constructors.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

Initializer = Callable[[tuple, int, int, np.random.Generator], np.ndarray]


def glorot_uniform(shape, fan_in, fan_out, rng):
    """Glorot & Bengio (2010): U(±sqrt(6 / (fan_in + fan_out)))."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def glorot_normal(shape, fan_in, fan_out, rng):
    """Glorot & Bengio (2010): N(0, 2 / (fan_in + fan_out))."""
    return (rng.standard_normal(shape) * math.sqrt(2.0 / (fan_in + fan_out))).astype(np.float32)


def he_normal(shape, fan_in, fan_out, rng):
    """He et al. (2015), for ReLU: N(0, 2 / fan_in)."""
    return (rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(np.float32)


def he_uniform(shape, fan_in, fan_out, rng):
    """He et al. (2015), for ReLU: U(±sqrt(6 / fan_in))."""
    limit = math.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def lecun_uniform_1998(shape, fan_in, fan_out, rng):
    """LeCun et al. (1998), appendix: U(±2.4 / fan_in)."""
    limit = 2.4 / fan_in
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def zeros(shape, fan_in, fan_out, rng):
    return np.zeros(shape, dtype=np.float32)


INITIALIZERS: dict[str, Initializer] = {
    "glorot_uniform": glorot_uniform,
    "xavier_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "xavier_normal": glorot_normal,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "lecun_uniform_1998": lecun_uniform_1998,
    "zeros": zeros,
}


def initializer(name_or_function, layer: str) -> Initializer:
    if callable(name_or_function):
        return name_or_function
    try:
        return INITIALIZERS[name_or_function]
    except (KeyError, TypeError):
        known = ", ".join(sorted(INITIALIZERS))
        raise ValueError(f"{layer}: unknown initializer {name_or_function!r}; known: {known}") from None


def as_generator(rng) -> np.random.Generator:
    """A Generator from a Generator, a seed or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)
