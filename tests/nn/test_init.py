"""Weight initialisers: bounds and spread, seeding, lookup by name."""

import math

import numpy as np
import pytest

from lenet5 import nn as ln
from lenet5.nn.init import INITIALIZERS, as_generator, initializer

FAN_IN, FAN_OUT = 300, 200
SHAPE = (FAN_OUT, FAN_IN)  # 60,000 draws: the standard deviation is known to about 0.3%

# name: (bound or None, standard deviation)
EXPECTED = {
    "glorot_uniform": (math.sqrt(6 / (FAN_IN + FAN_OUT)), math.sqrt(6 / (FAN_IN + FAN_OUT)) / math.sqrt(3)),
    "glorot_normal": (None, math.sqrt(2 / (FAN_IN + FAN_OUT))),
    "he_uniform": (math.sqrt(6 / FAN_IN), math.sqrt(2 / FAN_IN)),
    "he_normal": (None, math.sqrt(2 / FAN_IN)),
    "lecun_uniform_1998": (2.4 / FAN_IN, 2.4 / FAN_IN / math.sqrt(3)),
}


@pytest.mark.parametrize("name", EXPECTED)
def test_bounds_and_standard_deviation(name):
    bound, std = EXPECTED[name]
    weights = initializer(name, "test")(SHAPE, FAN_IN, FAN_OUT, np.random.default_rng(0))
    assert weights.shape == SHAPE and weights.dtype == np.float32
    assert abs(weights.std() / std - 1) < 0.02
    assert abs(weights.mean()) < 4 * std / math.sqrt(weights.size)
    if bound is None:
        assert np.abs(weights).max() > 3 * std  # a normal, not clipped
    else:
        assert np.abs(weights).max() <= bound
        assert np.abs(weights).max() > 0.99 * bound  # uniform over the whole range


def test_aliases_and_zeros():
    assert INITIALIZERS["xavier_uniform"] is INITIALIZERS["glorot_uniform"]
    assert INITIALIZERS["xavier_normal"] is INITIALIZERS["glorot_normal"]
    assert np.all(initializer("zeros", "test")((3, 4), 4, 3, np.random.default_rng(0)) == 0)


def test_layers_use_their_fan_in_lecun_1998():
    conv = ln.Conv2D(6, 16, 5, weight_init="lecun_uniform_1998", rng=0)
    assert np.abs(conv.weight.value).max() <= 2.4 / (6 * 25)
    dense = ln.Dense(120, 84, weight_init="lecun_uniform_1998", rng=0)
    assert np.abs(dense.weight.value).max() <= 2.4 / 120
    assert np.abs(dense.weight.value).max() > 0.9 * 2.4 / 120


@pytest.mark.parametrize("make", [
    lambda rng: ln.Conv2D(3, 4, 3, rng=rng),
    lambda rng: ln.Dense(5, 3, weight_init="glorot_normal", rng=rng),
])
def test_the_same_seed_gives_the_same_weights(make):
    assert np.array_equal(make(7).weight.value, make(7).weight.value)
    assert np.array_equal(make(np.random.default_rng(7)).weight.value, make(7).weight.value)
    assert not np.array_equal(make(7).weight.value, make(8).weight.value)


def test_one_generator_shared_by_layers_gives_each_its_own_weights():
    rng = np.random.default_rng(3)
    first, second = ln.Dense(4, 4, rng=rng), ln.Dense(4, 4, rng=rng)
    assert not np.array_equal(first.weight.value, second.weight.value)
    assert as_generator(rng) is rng


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError) as error:
        ln.Dense(3, 2, weight_init="orthogonal")
    message = str(error.value)
    assert "Dense" in message and "unknown initializer 'orthogonal'" in message
    for name in INITIALIZERS:
        assert name in message


def test_a_function_is_used_as_given():
    def ones(shape, fan_in, fan_out, rng):
        return np.ones(shape, np.float32)

    assert np.all(ln.Conv2D(2, 3, 3, weight_init=ones).weight.value == 1)
