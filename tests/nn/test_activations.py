"""ReLU, Sigmoid, Tanh, ScaledTanh and Softmax: finite differences, PyTorch twins, and finite,
warning-free results for inputs up to ±1e4."""

import warnings

import numpy as np
import pytest

from lenet5 import nn as ln
from lenet5.nn import check_layer

from .torch_twins import DTYPES, away_from_zero, check_against_twin

ALL = {"relu": ln.ReLU, "sigmoid": ln.Sigmoid, "tanh": ln.Tanh, "scaled_tanh": ln.ScaledTanh, "softmax": ln.Softmax}


def shapes(kind, count=20, seed=7):
    """Random (N, F) and (N, C, H, W) shapes for the element-wise layers, (N, K) for Softmax;
    batch 1 included."""
    rng = np.random.default_rng(seed)
    result = []
    for index in range(count):
        batch = 1 if index % 5 == 0 else int(rng.integers(2, 5))
        if kind == "softmax" or index % 2:
            shape = (batch, int(rng.integers(1, 8)))
        else:
            shape = (batch,) + tuple(int(v) for v in rng.integers(1, 5, 3))
        result.append(shape)
    return result


def ids(value):
    return "x".join(map(str, value)) if isinstance(value, tuple) else str(value)


def inputs(kind, shape, rng):
    # ReLU's kink at 0 must stay out of the finite-difference step.
    return away_from_zero(shape, rng) if kind == "relu" else 2 * rng.standard_normal(shape)


@pytest.mark.parametrize("kind, shape", [(kind, shape) for kind in ALL for shape in shapes(kind)[:8]], ids=ids)
def test_gradients_match_central_differences(kind, shape):
    rng = np.random.default_rng(1)
    errors = check_layer(ALL[kind](), inputs(kind, shape, rng), seed=2)
    assert errors["input"] < 1e-6, errors


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("kind, shape", [(kind, shape) for kind in ALL for shape in shapes(kind)], ids=ids)
def test_output_and_gradients_match_torch(kind, shape, dtype):
    rng = np.random.default_rng(3)
    check_against_twin(ALL[kind](), inputs(kind, shape, rng), dtype, seed=4)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("kind", ALL)
def test_inputs_up_to_1e4_give_finite_results_without_warnings(kind, dtype):
    x = np.array([[-1e4, -50.0, -1.0, 0.0, 1.0, 50.0, 1e4], [1e4, 1e4, -1e4, 0.0, 3.0, -3.0, 1e4]], dtype)
    layer = ALL[kind]()
    # Underflow to 0 (exp(−2e4)) is the right answer; overflow, 0/0 and inf−inf are not.
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        out = layer.forward(x)
        dx = layer.backward(np.random.default_rng(0).standard_normal(x.shape).astype(dtype))
    assert out.dtype == dtype and np.all(np.isfinite(out)) and np.all(np.isfinite(dx))
    check_against_twin(ALL[kind](), x, dtype)
    if kind == "sigmoid":
        assert out[0, 0] == 0 and out[0, -1] == 1 and out[0, 3] == 0.5
        assert dx[0, 0] == 0 and dx[0, -1] == 0
    if kind == "tanh":
        assert out[0, 0] == -1 and out[0, -1] == 1
    if kind == "scaled_tanh":
        assert out[0, -1] == pytest.approx(1.7159)
    if kind == "softmax":
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)
        assert out[0, -1] == 1 and out[0, 0] == 0
        assert out[1, 0] == pytest.approx(1 / 3) and out[1, 1] == pytest.approx(1 / 3)


def test_relu_gradient_is_zero_at_and_below_zero():
    layer = ln.ReLU()
    x = np.array([[-2.0, -0.0, 0.0, 1e-300, 3.0]])
    assert np.array_equal(layer.forward(x), [[0, 0, 0, 1e-300, 3.0]])
    assert np.array_equal(layer.backward(np.full_like(x, 5.0)), [[0, 0, 0, 5.0, 5.0]])


def test_scaled_tanh_maps_plus_minus_one_to_plus_minus_one():
    out = ln.ScaledTanh().forward(np.array([[-1.0, 1.0]]))
    np.testing.assert_allclose(out, [[-1.0, 1.0]], atol=1e-4)


def test_softmax_works_on_the_feature_axis_of_each_sample():
    x = np.array([[0.0, 0.0], [0.0, np.log(3.0)]])
    np.testing.assert_allclose(ln.Softmax().forward(x), [[0.5, 0.5], [0.25, 0.75]], rtol=1e-12)
