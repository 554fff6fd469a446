"""Conv2D: finite differences, its PyTorch twin and the loop oracle on random configurations."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from lenet5 import nn as ln
from lenet5.nn import check_layer

from . import naive
from .torch_twins import DTYPES, check_against_twin, connection_table, max_relative_difference, randomise


def conv_configs(count=24, seed=1998):
    """Random shapes, with the modes cycled so that every kernel size 1 to 5, stride 1 to 3,
    padding 0 and > 0, batch 1, masked and unmasked, bias and no bias all occur."""
    rng = np.random.default_rng(seed)
    configs = []
    for index in range(count):
        kernel = (1 + index % 5, int(rng.integers(1, 6)))
        stride = (1 + index % 3, int(rng.integers(1, 4)))
        padding = (0, 0) if index % 2 == 0 else (int(rng.integers(1, 3)), int(rng.integers(0, 3)))
        size = tuple(int(rng.integers(max(1, k - 2 * p), k + 5)) for k, p in zip(kernel, padding))
        config = dict(
            batch=1 if index % 4 == 0 else int(rng.integers(2, 4)),
            channels=int(rng.integers(1, 4)),
            filters=int(rng.integers(1, 5)),
            size=size,
            kernel=kernel,
            stride=stride,
            padding=padding,
            masked=index % 4 in (1, 2),
            bias=index % 5 != 4,
        )
        name = (f"n{config['batch']}c{config['channels']}f{config['filters']}-{size[0]}x{size[1]}"
                f"-k{kernel[0]}x{kernel[1]}-s{stride[0]}x{stride[1]}-p{padding[0]}x{padding[1]}"
                + ("-masked" if config["masked"] else "") + ("" if config["bias"] else "-nobias"))
        configs.append(pytest.param(config, id=name))
    return configs


CONFIGS = conv_configs()


def make_conv(config, seed=0):
    rng = np.random.default_rng(seed)
    table = connection_table(rng, config["filters"], config["channels"]) if config["masked"] else None
    layer = ln.Conv2D(config["channels"], config["filters"], config["kernel"], config["stride"],
                      config["padding"], bias=config["bias"], connections=table, rng=rng)
    randomise(layer, rng)
    x = rng.standard_normal((config["batch"], config["channels"]) + config["size"])
    return layer, x


@pytest.mark.parametrize("config", CONFIGS)
def test_gradients_match_central_differences(config):
    layer, x = make_conv(config)
    errors = check_layer(layer, x, seed=1)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("config", CONFIGS)
def test_output_and_gradients_match_torch(config, dtype):
    layer, x = make_conv(config, seed=2)
    check_against_twin(layer, x, dtype, seed=3)


@pytest.mark.parametrize("config", CONFIGS)
def test_output_and_gradients_match_the_loop_oracle(config):
    layer, x = make_conv(config, seed=4)
    layer.to(np.float64)
    weight = layer.weight.value
    if layer.connections is not None:
        weight = weight * layer.connections[:, :, None, None]
    bias = None if layer.bias is None else layer.bias.value
    out = layer.forward(x)
    expected = naive.conv2d(x, weight, bias, layer.stride, layer.padding)
    assert max_relative_difference(out, expected) < 1e-12

    dout = np.random.default_rng(5).standard_normal(out.shape)
    dx = layer.backward(dout)
    expected_dx, expected_dweight, expected_dbias = naive.conv2d_backward(x, weight, layer.stride, layer.padding, dout)
    if layer.connections is not None:
        expected_dweight = expected_dweight * layer.connections[:, :, None, None]
    assert max_relative_difference(dx, expected_dx) < 1e-12
    assert max_relative_difference(layer.weight.grad, expected_dweight) < 1e-12
    if layer.bias is not None:
        assert max_relative_difference(layer.bias.grad, expected_dbias) < 1e-12


def test_a_connection_table_cuts_maps_off_in_forward_and_backward():
    table = np.array([[1, 0, 1], [0, 1, 0]])
    layer = ln.Conv2D(3, 2, 3, connections=table, rng=0)
    assert np.all(layer.weight.value[table == 0] == 0)  # initialised as zero outside the table
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 5, 5))
    layer.weight.value[...] = rng.standard_normal(layer.weight.shape)
    out = layer.forward(x)
    layer.weight.value[table == 0] = 1e3  # weights outside the table must not matter
    assert np.array_equal(layer.forward(x), out)
    changed = x.copy()
    changed[:, 1] += 10.0  # map 0 does not see input map 1
    assert np.array_equal(layer.forward(changed)[:, 0], out[:, 0])
    layer.backward(rng.standard_normal(out.shape))
    assert np.all(layer.weight.grad[table == 0] == 0)
    assert np.all(layer.weight.grad[table == 1] != 0)


@settings(max_examples=60, deadline=None)
@given(
    size=st.tuples(st.integers(1, 12), st.integers(1, 12)),
    kernel=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
)
def test_output_shape_follows_the_formula_with_padding_like_torch(size, kernel, stride, padding):
    if any(s + 2 * p < k for s, p, k in zip(size, padding, kernel)):
        with pytest.raises(ValueError, match="smaller than the kernel"):
            ln.Conv2D(2, 3, kernel, stride, padding).forward(np.zeros((1, 2) + size))
        return
    layer = ln.Conv2D(2, 3, kernel, stride, padding)
    out = layer.forward(np.zeros((1, 2) + size, np.float32))
    reference = F.conv2d(torch.zeros((1, 2) + size), torch.zeros(3, 2, *kernel), None, stride, padding)
    assert out.shape == tuple(reference.shape)
    assert layer.output_shape((2,) + size) == out.shape[1:]
