"""Finite-difference gradient checks in float64, for the tests and `lenet5 gradcheck`.

A layer is checked through a vector-Jacobian product: with a random upstream gradient G,
f(x) = Σ forward(x) ⊙ G is a scalar whose gradient is exactly what `backward(G)` returns,
so one central difference per input element checks the whole backward pass.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .loss import SoftmaxCrossEntropy
from .module import Module


# Below this, a finite-difference gradient is indistinguishable from rounding noise.
ZERO_GRADIENT = 1e-7


def rel_error(a, b) -> float:
    """‖a − b‖ / (‖a‖ + ‖b‖), 0 when both are 0."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    denominator = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denominator == 0 else float(np.linalg.norm(a - b) / denominator)


def numerical_gradient(f: Callable[[], float], array: np.ndarray, h: float = 1e-6,
                       indices=None) -> np.ndarray:
    """∂f/∂array by central differences, perturbing `array` in place (restored after).

    With `indices` (flat positions) only those entries are computed; the rest stay 0.
    """
    grad = np.zeros_like(array, dtype=np.float64)
    flat, flat_grad = array.reshape(-1), grad.reshape(-1)
    if not np.shares_memory(flat, array):
        raise ValueError("numerical_gradient needs a contiguous array to perturb in place")
    for index in range(flat.size) if indices is None else indices:
        original = flat[index]
        flat[index] = original + h
        plus = f()
        flat[index] = original - h
        minus = f()
        flat[index] = original
        flat_grad[index] = (plus - minus) / (2 * h)
    return grad


def _random_states(module: Module) -> list:
    """Every Generator in the module tree, so each evaluation of f draws the same masks."""
    found = [module.rng] if isinstance(getattr(module, "rng", None), np.random.Generator) else []
    for _, child in module.named_children():
        found += _random_states(child)
    return found


def check_layer(layer: Module, x: np.ndarray, seed: int = 0, h: float = 1e-6,
                max_entries: int | None = None) -> dict[str, float]:
    """Relative errors between `backward` and central differences, for the input and each
    parameter, in float64. `max_entries` samples that many entries per array (all if None).

    Returns {"input": err, "<param name>": err, ...}.
    """
    rng = np.random.default_rng(seed)
    layer.to(np.float64)
    x = np.array(x, dtype=np.float64)
    generators = _random_states(layer)
    saved = [g.bit_generator.state for g in generators]

    def run(inp):
        for generator, state in zip(generators, saved):
            generator.bit_generator.state = state
        return layer.forward(inp)

    upstream = rng.standard_normal(run(x).shape)

    def objective() -> float:
        return float(np.sum(run(x) * upstream))

    for parameter in layer.parameters():
        parameter.zero_grad()
    run(x)
    upstream_copy = upstream.copy()
    analytic_dx = layer.backward(upstream)
    if not np.array_equal(upstream, upstream_copy):
        raise AssertionError(f"{layer!r}.backward modified its upstream gradient")
    errors = {"input": _compare(objective, x, analytic_dx, h, max_entries, rng)}
    for name, parameter in layer.named_parameters():
        errors[name] = _compare(objective, parameter.value, parameter.grad.copy(), h, max_entries, rng)
    return errors


def check_model(model, x: np.ndarray, labels: np.ndarray, seed: int = 0, h: float = 1e-6,
                max_entries: int | None = 20) -> dict[str, float]:
    """Like `check_layer`, for a whole model under softmax cross-entropy."""
    rng = np.random.default_rng(seed)
    model.to(np.float64)
    x = np.array(x, dtype=np.float64)
    loss = SoftmaxCrossEntropy()
    generators = _random_states(model)
    saved = [g.bit_generator.state for g in generators]

    def objective() -> float:
        for generator, state in zip(generators, saved):
            generator.bit_generator.state = state
        return loss(model.forward(x), labels)

    for parameter in model.parameters():
        parameter.zero_grad()
    objective()
    analytic_dx = model.backward(loss.backward())
    errors = {"input": _compare(objective, x, analytic_dx, h, max_entries, rng)}
    for name, parameter in model.named_parameters():
        errors[name] = _compare(objective, parameter.value, parameter.grad.copy(), h, max_entries, rng)
    return errors


def _compare(objective, array, analytic, h, max_entries, rng) -> float:
    """Relative error; where both gradients are ~0 (a conv bias before BatchNorm has a true
    gradient of exactly 0), the ratio of two rounding noises means nothing, so the largest
    absolute difference is returned instead."""
    indices = None
    if max_entries is not None and array.size > max_entries:
        indices = rng.choice(array.size, size=max_entries, replace=False)
    numeric = numerical_gradient(objective, array, h, indices)
    analytic = np.asarray(analytic, np.float64).reshape(-1)
    numeric = numeric.reshape(-1)
    if indices is not None:
        analytic, numeric = analytic[indices], numeric[indices]
    if max(np.abs(analytic).max(initial=0), np.abs(numeric).max(initial=0)) < ZERO_GRADIENT:
        return float(np.abs(analytic - numeric).max(initial=0))
    return rel_error(analytic, numeric)
