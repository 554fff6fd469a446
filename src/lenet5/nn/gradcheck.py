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
                       indices=None, five_point: bool = False) -> np.ndarray:
    """∂f/∂array by central differences, perturbing `array` in place (restored after).

    The 3-point stencil (f(x+h) − f(x−h)) / 2h has truncation error O(h²); the 5-point one
    (−f(x+2h) + 8f(x+h) − 8f(x−h) + f(x−2h)) / 12h has O(h⁴), which lets smooth functions
    use a step large enough that rounding noise stays far below the gradient.
    With `indices` (flat positions) only those entries are computed; the rest stay 0.
    """
    grad = np.zeros_like(array, dtype=np.float64)
    flat, flat_grad = array.reshape(-1), grad.reshape(-1)
    if not np.shares_memory(flat, array):
        raise ValueError("numerical_gradient needs a contiguous array to perturb in place")

    def at(index, offset):
        flat[index] = original + offset
        return f()

    for index in range(flat.size) if indices is None else indices:
        original = flat[index]
        if five_point:
            flat_grad[index] = (-at(index, 2 * h) + 8 * at(index, h) - 8 * at(index, -h)
                                + at(index, -2 * h)) / (12 * h)
        else:
            flat_grad[index] = (at(index, h) - at(index, -h)) / (2 * h)
        flat[index] = original
    return grad


def _random_states(module: Module) -> list:
    """Every Generator in the module tree, so each evaluation of f draws the same masks."""
    return [m.rng for m in module.modules() if isinstance(getattr(m, "rng", None), np.random.Generator)]


def check_layer(layer: Module, x: np.ndarray, seed: int = 0, h: float = 1e-6,
                max_entries: int | None = None, five_point: bool = False) -> dict[str, float]:
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
    errors = {"input": _compare(objective, x, analytic_dx, h, max_entries, rng, five_point)}
    for name, parameter in layer.named_parameters():
        errors[name] = _compare(objective, parameter.value, parameter.grad.copy(), h, max_entries, rng, five_point)
    return errors


def check_model(model, x: np.ndarray, labels: np.ndarray | None = None, seed: int = 0,
                h: float | None = None, max_entries: int | None = 20) -> dict[str, float]:
    """Like `check_layer`, for a whole model, on `max_entries` sampled entries per array.

    Without `labels` the objective is Σ logits ⊙ G for a random G (the vector-Jacobian
    product, which keeps gradients large enough to measure); with `labels` it is the mean
    softmax cross-entropy. `h` defaults to 1e-4 for smooth models, where truncation error is
    tiny and a larger step beats rounding noise, and to 1e-6 for models with kinks (ReLU,
    max-pooling), where a larger step could cross a kink. The 5-point stencil is used for both.
    """
    five_point = True
    if h is None:
        h = 1e-6 if has_kinks(model) else 1e-4
    if labels is None:
        return check_layer(model, x, seed=seed, h=h, max_entries=max_entries, five_point=True)
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
    errors = {"input": _compare(objective, x, analytic_dx, h, max_entries, rng, five_point)}
    for name, parameter in model.named_parameters():
        errors[name] = _compare(objective, parameter.value, parameter.grad.copy(), h, max_entries, rng, five_point)
    return errors


def has_kinks(module: Module) -> bool:
    """Whether any layer is only piecewise smooth (ReLU, max-pooling)."""
    from .activations import ReLU
    from .pooling import MaxPool2D

    return any(isinstance(m, (ReLU, MaxPool2D)) for m in module.modules())


def _compare(objective, array, analytic, h, max_entries, rng, five_point=False) -> float:
    """Relative error; where both gradients are ~0 (a conv bias before BatchNorm has a true
    gradient of exactly 0), the ratio of two rounding noises means nothing, so the largest
    absolute difference is returned instead."""
    indices = None
    if max_entries is not None and array.size > max_entries:
        indices = rng.choice(array.size, size=max_entries, replace=False)
    numeric = numerical_gradient(objective, array, h, indices, five_point)
    analytic = np.asarray(analytic, np.float64).reshape(-1)
    numeric = numeric.reshape(-1)
    if indices is not None:
        analytic, numeric = analytic[indices], numeric[indices]
    if max(np.abs(analytic).max(initial=0), np.abs(numeric).max(initial=0)) < ZERO_GRADIENT:
        return float(np.abs(analytic - numeric).max(initial=0))
    return rel_error(analytic, numeric)
