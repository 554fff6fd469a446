"""Dense and Flatten: finite differences and PyTorch twins on random shapes."""

import numpy as np
import pytest
import torch

from lenet5 import nn as ln
from lenet5.nn import check_layer

from .torch_twins import DTYPES, check_against_twin, randomise

DTYPE_IDS = ["float64", "float32"]


def dense_configs(count=20, seed=11):
    rng = np.random.default_rng(seed)
    configs = []
    for index in range(count):
        batch = 1 if index % 4 == 0 else int(rng.integers(2, 6))
        features = (int(rng.integers(1, 9)), int(rng.integers(1, 7)))
        bias = index % 3 != 2
        name = f"n{batch}-{features[0]}to{features[1]}" + ("" if bias else "-nobias")
        configs.append(pytest.param(batch, features, bias, id=name))
    return configs


def make_dense(batch, features, bias, seed=0):
    rng = np.random.default_rng(seed)
    layer = ln.Dense(*features, bias=bias, rng=rng)
    randomise(layer, rng)
    return layer, rng.standard_normal((batch, features[0]))


@pytest.mark.parametrize("batch, features, bias", dense_configs())
def test_dense_gradients_match_central_differences(batch, features, bias):
    errors = check_layer(*make_dense(batch, features, bias), seed=1)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("batch, features, bias", dense_configs())
def test_dense_matches_torch(batch, features, bias, dtype):
    check_against_twin(*make_dense(batch, features, bias, seed=2), dtype, seed=3)


def test_dense_weight_has_torch_linear_layout():
    layer = ln.Dense(4, 3, rng=0)
    assert layer.weight.shape == (3, 4) and layer.bias.shape == (3,)
    assert ln.Dense(4, 3, bias=False).bias is None
    assert [name for name, _ in ln.Dense(4, 3, bias=False).named_parameters()] == ["weight"]


def flatten_shapes(count=20, seed=12):
    rng = np.random.default_rng(seed)
    result = []
    for index in range(count):
        batch = 1 if index % 4 == 0 else int(rng.integers(2, 5))
        rest = tuple(int(v) for v in rng.integers(1, 5, 3 if index % 5 else 1))
        result.append(pytest.param((batch,) + rest, id="x".join(map(str, (batch,) + rest))))
    return result


@pytest.mark.parametrize("shape", flatten_shapes())
def test_flatten_gradients_match_central_differences(shape):
    errors = check_layer(ln.Flatten(), np.random.default_rng(1).standard_normal(shape), seed=2)
    assert errors["input"] < 1e-6


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", flatten_shapes())
def test_flatten_matches_torch(shape, dtype):
    out = check_against_twin(ln.Flatten(), np.random.default_rng(3).standard_normal(shape), dtype)
    assert out.shape == (shape[0], int(np.prod(shape[1:])))


def test_flatten_keeps_torchs_channel_row_column_order():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
    assert np.array_equal(ln.Flatten().forward(x), x.reshape(2, -1))
    assert np.array_equal(ln.Flatten().forward(x), torch.flatten(torch.tensor(x), 1).numpy())
    assert ln.Flatten().output_shape((3, 4, 5)) == (60,)
