"""MaxPool2D, AvgPool2D and Subsampling: finite differences, PyTorch twins, the loop oracle,
deliberate max-pool ties and output sizes with padding."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from lenet5 import nn as ln
from lenet5.nn import check_layer

from . import naive
from .torch_twins import DTYPES, check_against_twin, distinct, max_relative_difference, randomise

DTYPE_IDS = ["float64", "float32"]


def pool_configs(count=24, seed=1989):
    """Random shapes with kernel 1 to 5, stride 1 to 3 or the default (= kernel, so both
    overlapping and gapped windows occur), padding 0 and up to half the kernel, batch 1."""
    rng = np.random.default_rng(seed)
    configs = []
    for index in range(count):
        kernel = (1 + index % 5, int(rng.integers(1, 6)))
        stride = None if index % 4 == 3 else (1 + index % 3, int(rng.integers(1, 4)))
        padding = (0, 0)
        if index % 2 == 1:
            padding = (kernel[0] // 2, int(rng.integers(0, kernel[1] // 2 + 1)))
        size = tuple(int(rng.integers(max(1, k - 2 * p), k + 6)) for k, p in zip(kernel, padding))
        config = dict(batch=1 if index % 4 == 0 else int(rng.integers(2, 4)), channels=int(rng.integers(1, 4)),
                      size=size, kernel=kernel, stride=stride, padding=padding)
        step = "default" if stride is None else f"{stride[0]}x{stride[1]}"
        name = (f"n{config['batch']}c{config['channels']}-{size[0]}x{size[1]}-k{kernel[0]}x{kernel[1]}"
                f"-s{step}-p{padding[0]}x{padding[1]}")
        configs.append(pytest.param(config, id=name))
    return configs


CONFIGS = pool_configs()
KINDS = {"max": ln.MaxPool2D, "avg": ln.AvgPool2D}


def make_pool(kind, config, seed=0):
    rng = np.random.default_rng(seed)
    layer = KINDS[kind](config["kernel"], config["stride"], config["padding"])
    shape = (config["batch"], config["channels"]) + config["size"]
    # Distinct values: no ties, no near-ties, so finite differences stay on one side of a kink.
    x = distinct(shape, rng) if kind == "max" else rng.standard_normal(shape)
    return layer, x


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("config", CONFIGS)
def test_gradients_match_central_differences(kind, config):
    layer, x = make_pool(kind, config)
    errors = check_layer(layer, x, seed=1)
    assert errors["input"] < 1e-6, errors


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("config", CONFIGS)
def test_output_and_gradients_match_torch(kind, config, dtype):
    layer, _ = make_pool(kind, config)
    shape = (config["batch"], config["channels"]) + config["size"]
    check_against_twin(layer, np.random.default_rng(2).standard_normal(shape), dtype, seed=3)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", [(4, 6), (5, 7), (2, 3), (9, 2)])
def test_two_by_two_windows_on_odd_and_even_sizes_match_torch(kind, size, dtype):
    # LeNet's own pooling: odd sizes drop the last row or column, and a batch-first input
    # reaches the layer as a strided view.
    layer = KINDS[kind](2)
    check_against_twin(layer, np.random.default_rng(6).standard_normal((3, 2) + size), dtype, seed=7)
    assert KINDS[kind](2, 2).forward(np.ones((1, 1) + size)).shape == (1, 1, size[0] // 2, size[1] // 2)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("config", CONFIGS)
def test_output_and_gradients_match_the_loop_oracle(kind, config):
    layer, _ = make_pool(kind, config)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((config["batch"], config["channels"]) + config["size"])
    out = layer.forward(x)
    assert max_relative_difference(out, naive.pool2d(x, layer.kernel_size, layer.stride, layer.padding, kind)) < 1e-12
    dout = rng.standard_normal(out.shape)
    expected = naive.pool2d_backward(x, layer.kernel_size, layer.stride, layer.padding, kind, dout)
    assert max_relative_difference(layer.backward(dout), expected) < 1e-12


# -- deliberate ties ----------------------------------------------------------------------------
def torch_max_pool_gradient(x, layer, dout):
    tx = torch.tensor(x, requires_grad=True)
    F.max_pool2d(tx, layer.kernel_size, layer.stride, layer.padding).backward(torch.tensor(dout))
    return tx.grad.numpy()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_an_all_zero_window_routes_its_gradient_to_its_first_element_only(dtype):
    layer = ln.MaxPool2D(2)
    x = np.zeros((2, 3, 4, 6), dtype)
    dout = np.random.default_rng(0).standard_normal((2, 3, 2, 3)).astype(dtype)
    out = layer.forward(x)
    dx = layer.backward(dout)
    assert np.all(out == 0)
    expected = np.zeros_like(x)
    expected[:, :, ::2, ::2] = dout  # the top-left element: first in row-major window order
    assert np.array_equal(dx, expected)
    assert np.array_equal(dx, torch_max_pool_gradient(x, layer, dout))


@settings(max_examples=60, deadline=None)
@given(size=st.tuples(st.integers(2, 9), st.integers(2, 9)), batch=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_two_by_two_ties_route_like_the_loop_oracle_in_both_modes(size, batch, seed):
    # Values from {-1, 0, 1}: most windows tie, in every arrangement of their four elements.
    x = np.random.default_rng(seed).integers(-1, 2, (batch, 2) + size).astype(np.float64)
    dout = np.random.default_rng(seed + 1).standard_normal((batch, 2, size[0] // 2, size[1] // 2))
    expected = naive.pool2d_backward(x, (2, 2), (2, 2), (0, 0), "max", dout)
    for training in (True, False):
        layer = ln.MaxPool2D(2).train(training)
        layer.forward(x)
        np.testing.assert_array_equal(layer.backward(dout), expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kernel", [2, 3, (2, 3)])
def test_repeated_maxima_give_exactly_one_gradient_per_window_at_the_first_maximum(kernel, dtype):
    layer = ln.MaxPool2D(kernel)
    kh, kw = layer.kernel_size
    rng = np.random.default_rng(1)
    x = rng.integers(0, 2, (2, 2, 3 * kh, 4 * kw)).astype(dtype)  # most windows hold several maxima
    x[0, 0] = 0  # and whole maps of all-zero windows
    layer.forward(x)
    dx = layer.backward(np.ones((2, 2, 3, 4), dtype))
    windows = dx.reshape(2, 2, 3, kh, 4, kw).transpose(0, 1, 2, 4, 3, 5).reshape(2, 2, 3, 4, kh * kw)
    values = x.reshape(2, 2, 3, kh, 4, kw).transpose(0, 1, 2, 4, 3, 5).reshape(2, 2, 3, 4, kh * kw)
    assert np.all((windows == 0) | (windows == 1))
    assert np.all(windows.sum(axis=-1) == 1)  # exactly one element per window
    first_max = values.argmax(axis=-1)  # argmax: the first maximal element, row-major
    assert np.all(np.take_along_axis(windows, first_max[..., None], axis=-1) == 1)


@pytest.mark.parametrize("kernel, stride, padding", [(2, 2, 0), (3, 1, 1), ((2, 3), (1, 2), (1, 1))])
def test_eval_mode_routes_the_gradient_like_training_mode(kernel, stride, padding):
    # Training finds each window's first maximum during forward and keeps only that; eval
    # mode keeps the input and finds it during backward. Both must route every tie alike.
    layer = ln.MaxPool2D(kernel, stride, padding)
    rng = np.random.default_rng(3)
    x = rng.integers(-1, 2, (2, 3, 8, 9)).astype(np.float32)
    dout = rng.standard_normal(layer.forward(x).shape).astype(np.float32)
    gradients = {}
    for mode in ("train", "eval"):
        getattr(layer, mode)()
        layer.forward(x)
        gradients[mode] = layer.backward(dout)
    np.testing.assert_array_equal(gradients["eval"], gradients["train"])
    assert np.count_nonzero(gradients["train"]) > 0


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kernel, stride, padding",
                         [(2, 1, 0), (3, 1, 1), (3, 2, 1), (3, 2, 0), ((2, 3), (1, 2), (1, 1))])
def test_ties_in_overlapping_windows_match_torch_and_the_loop_oracle(kernel, stride, padding, dtype):
    layer = ln.MaxPool2D(kernel, stride, padding)
    rng = np.random.default_rng(2)
    x = rng.integers(-1, 2, (2, 2, 7, 8)).astype(dtype)
    x[1, 1] = 0
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = layer.backward(dout)
    reference = torch_max_pool_gradient(x, layer, dout)
    oracle = naive.pool2d_backward(x.astype(np.float64), layer.kernel_size, layer.stride, layer.padding, "max", dout)
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    assert max_relative_difference(dx, reference) < tolerance
    assert max_relative_difference(dx, oracle) < tolerance
    assert dx.sum() == pytest.approx(dout.sum(), rel=tolerance, abs=tolerance)  # no gradient lost or doubled


# -- padding --------------------------------------------------------------------------------------
def test_max_pool_padding_is_minus_infinity_and_avg_pool_padding_counts_as_zero():
    x = -np.ones((1, 1, 3, 3))
    assert np.all(ln.MaxPool2D(3, stride=1, padding=1).forward(x) == -1)
    out = ln.AvgPool2D(3, stride=1, padding=1).forward(-x)
    assert out[0, 0, 0, 0] == pytest.approx(4 / 9) and out[0, 0, 1, 1] == pytest.approx(1.0)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(sorted(KINDS)),
    size=st.tuples(st.integers(1, 12), st.integers(1, 12)),
    kernel=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    data=st.data(),
)
def test_output_shape_follows_the_formula_with_padding_like_torch(kind, size, kernel, stride, data):
    padding = tuple(data.draw(st.integers(0, k // 2)) for k in kernel)
    layer = KINDS[kind](kernel, stride, padding)
    x = np.zeros((1, 2) + size)
    if any(s + 2 * p < k for s, p, k in zip(size, padding, kernel)):
        with pytest.raises(ValueError, match="smaller than the window"):
            layer.forward(x)
        return
    function = F.max_pool2d if kind == "max" else F.avg_pool2d
    reference = function(torch.tensor(x), kernel, stride, padding)
    out = layer.forward(x)
    assert out.shape == tuple(reference.shape)
    assert layer.output_shape((2,) + size) == out.shape[1:]


# -- Subsampling (LeNet-5's trainable pooling) ----------------------------------------------------
def subsampling_configs(count=20, seed=5):
    rng = np.random.default_rng(seed)
    configs = []
    for index in range(count):
        kernel = [2, 3, (2, 3), 1][index % 4]
        batch = 1 if index % 5 == 0 else int(rng.integers(2, 4))
        channels = int(rng.integers(1, 5))
        size = (int(rng.integers(3, 9)), int(rng.integers(3, 9)))
        name = f"n{batch}c{channels}-{size[0]}x{size[1]}-k{kernel}"
        configs.append(pytest.param((batch, channels, size, kernel), id=name))
    return configs


SUBSAMPLING = subsampling_configs()


def make_subsampling(config, seed=0):
    batch, channels, size, kernel = config
    rng = np.random.default_rng(seed)
    layer = ln.Subsampling(channels, kernel)
    randomise(layer, rng)
    return layer, rng.standard_normal((batch, channels) + size)


@pytest.mark.parametrize("config", SUBSAMPLING)
def test_subsampling_gradients_match_central_differences(config):
    layer, x = make_subsampling(config)
    errors = check_layer(layer, x, seed=1)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("config", SUBSAMPLING)
def test_subsampling_matches_torch(config, dtype):
    layer, x = make_subsampling(config, seed=2)
    check_against_twin(layer, x, dtype, seed=3)


def test_subsampling_starts_as_average_pooling():
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6))
    assert max_relative_difference(ln.Subsampling(3).forward(x), ln.AvgPool2D(2).forward(x)) < 1e-7
