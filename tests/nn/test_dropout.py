"""Dropout: mask statistics and scaling, identity in eval and at p = 0, seeded masks, and the
PyTorch twin given the layer's own mask."""

import math

import numpy as np
import pytest

from lenet5 import nn as ln
from lenet5.nn import check_layer

from .torch_twins import DTYPES, check_against_twin


def keep_mask(layer):
    """The layer's last mask, batch-first, as booleans."""
    return np.array(layer._mask) != 0


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_fraction_kept_is_one_minus_p_and_survivors_are_scaled_by_exactly_its_inverse(p, dtype):
    layer = ln.Dropout(p, rng=0)
    x = np.ones((400, 500), dtype)
    out = layer.forward(x)
    kept = out != 0
    standard_error = math.sqrt(p * (1 - p) / x.size)
    assert abs(kept.mean() - (1 - p)) < 4 * standard_error
    assert np.all(out[kept] == dtype(1 / (1 - p)))
    assert out.dtype == dtype
    assert np.array_equal(kept, keep_mask(layer))


def test_backward_applies_the_forward_mask_and_scale():
    layer = ln.Dropout(0.3, rng=1)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 2, 4, 4))
    out = layer.forward(x)
    kept = keep_mask(layer)
    np.testing.assert_allclose(out, x * kept / 0.7, rtol=1e-15)
    dout = rng.standard_normal(x.shape)
    np.testing.assert_allclose(layer.backward(dout), dout * kept / 0.7, rtol=1e-15)


def test_eval_mode_is_the_identity():
    layer = ln.Dropout(0.5, rng=0).eval()
    x = np.random.default_rng(0).standard_normal((4, 3, 2, 2))
    assert np.array_equal(layer.forward(x), x)
    assert np.array_equal(layer.backward(2 * x), 2 * x)


def test_p_zero_is_the_identity_in_training():
    layer = ln.Dropout(0.0, rng=0)
    x = np.random.default_rng(0).standard_normal((4, 7))
    assert layer.training and np.array_equal(layer.forward(x), x)
    assert np.array_equal(layer.backward(x), x)


def test_the_same_seed_draws_the_same_masks_and_successive_calls_differ():
    x = np.ones((8, 3, 5, 5))
    first, second = ln.Dropout(0.5, rng=42), ln.Dropout(0.5, rng=42)
    a, b = first.forward(x), second.forward(x)
    assert np.array_equal(a, b)
    assert np.array_equal(first.forward(x), second.forward(x))
    assert not np.array_equal(first.forward(x), a)
    assert not np.array_equal(ln.Dropout(0.5, rng=43).forward(x), a)


@pytest.mark.parametrize("p", [1.0, 1.5, -0.1, float("nan"), "0.5", None])
def test_invalid_p_is_refused(p):
    with pytest.raises(ValueError) as error:
        ln.Dropout(p)
    assert "Dropout" in str(error.value) and "[0, 1)" in str(error.value) and repr(p) in str(error.value)


def dropout_configs(count=20, seed=13):
    rng = np.random.default_rng(seed)
    configs = []
    for index in range(count):
        batch = 1 if index % 5 == 0 else int(rng.integers(2, 6))
        if index % 2:
            shape = (batch, int(rng.integers(1, 9)))
        else:
            shape = (batch,) + tuple(int(v) for v in rng.integers(1, 5, 3))
        p = float(rng.choice([0.0, 0.2, 0.5, 0.7]))
        training = index % 3 != 2
        name = f"{'x'.join(map(str, shape))}-p{p}-{'train' if training else 'eval'}"
        configs.append(pytest.param(shape, p, training, id=name))
    return configs


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("shape, p, training", dropout_configs())
def test_matches_torch_given_the_layers_mask(shape, p, training, dtype):
    layer = ln.Dropout(p, rng=5).train(training)
    check_against_twin(layer, np.random.default_rng(6).standard_normal(shape), dtype, seed=7)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_gradients_match_central_differences(training):
    layer = ln.Dropout(0.4, rng=8).train(training)
    errors = check_layer(layer, np.random.default_rng(9).standard_normal((3, 2, 3, 3)), seed=10)
    assert errors["input"] < 1e-6, errors
