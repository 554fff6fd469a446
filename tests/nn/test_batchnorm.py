"""BatchNorm2D and BatchNorm1D: per-channel statistics, both modes, running statistics as in
PyTorch (momentum on the new value, unbiased variance), non-uniform upstream gradients."""

import numpy as np
import pytest
import torch

from lenet5 import nn as ln
from lenet5.nn import check_layer

from .torch_twins import DTYPES, assert_close, check_against_twin, randomise

MODES = [pytest.param(True, id="train"), pytest.param(False, id="eval")]
KINDS = {"2d": (ln.BatchNorm2D, torch.nn.BatchNorm2d), "1d": (ln.BatchNorm1D, torch.nn.BatchNorm1d)}


def norm_configs(kind, count=20, seed=2015):
    """Random shapes, eps and momentum. At least 3 values per channel: with 2, training
    maps them to ±1 whatever they are, and the input gradient is rounding noise."""
    rng = np.random.default_rng(seed + len(kind))
    configs = []
    for index in range(count):
        channels = int(rng.integers(1, 5))
        if kind == "2d":
            batch = 1 if index % 4 == 0 else int(rng.integers(2, 5))
            size = (int(rng.integers(1, 6)), int(rng.integers(3, 6)))
            shape = (batch, channels) + size
        else:
            shape = (int(rng.integers(3, 8)), channels)
        eps = [1e-5, 1e-3][index % 2]
        momentum = [0.1, 0.3][index // 2 % 2]
        name = f"{kind}-{'x'.join(map(str, shape))}-eps{eps:g}-m{momentum}"
        configs.append(pytest.param(kind, (shape, eps, momentum), id=name))
    return configs


def make_norm(kind, config, training, seed=0):
    shape, eps, momentum = config
    rng = np.random.default_rng(seed)
    layer = KINDS[kind][0](shape[1], eps=eps, momentum=momentum)
    randomise(layer, rng)
    layer.train(training)
    return layer, rng.normal(0.5, 2.0, shape)


CONFIGS = norm_configs("2d") + norm_configs("1d")


@pytest.mark.parametrize("training", MODES)
@pytest.mark.parametrize("kind, config", CONFIGS)
def test_gradients_match_central_differences(kind, config, training):
    layer, x = make_norm(kind, config, training)
    errors = check_layer(layer, x, seed=1)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("training", MODES)
@pytest.mark.parametrize("kind, config", CONFIGS)
def test_output_and_gradients_match_torch(kind, config, training, dtype):
    layer, x = make_norm(kind, config, training, seed=2)
    check_against_twin(layer, x, dtype, seed=3)


@pytest.mark.parametrize("momentum", [0.1, 0.5])
@pytest.mark.parametrize("kind", KINDS)
def test_running_statistics_follow_torch_over_training_steps_then_eval_uses_them(kind, momentum):
    ours_type, torch_type = KINDS[kind]
    layer = ours_type(3, momentum=momentum).to(np.float64)
    reference = torch_type(3, momentum=momentum).double()
    rng = np.random.default_rng(0)
    randomise(layer, rng)
    layer.running_mean[...], layer.running_var[...] = 0.0, 1.0
    with torch.no_grad():
        reference.weight.copy_(torch.tensor(layer.weight.value))
        reference.bias.copy_(torch.tensor(layer.bias.value))
    shape = (5, 3, 4, 3) if kind == "2d" else (7, 3)
    expected_mean, expected_var = np.zeros(3), np.ones(3)
    axes = (0, 2, 3) if kind == "2d" else (0,)
    for _ in range(4):
        x = rng.normal(rng.uniform(-3, 3), rng.uniform(0.5, 3), shape)
        assert_close(layer.forward(x), reference(torch.tensor(x)), np.float64, "training output")
        expected_mean = (1 - momentum) * expected_mean + momentum * x.mean(axis=axes)
        expected_var = (1 - momentum) * expected_var + momentum * x.var(axis=axes, ddof=1)
    assert_close(layer.running_mean, reference.running_mean, np.float64, "running_mean")
    assert_close(layer.running_var, reference.running_var, np.float64, "running_var")
    assert_close(layer.running_var, expected_var, np.float64, "running_var (unbiased)")
    assert_close(layer.running_mean, expected_mean, np.float64, "running_mean (formula)")

    layer.eval()
    reference.eval()
    x = rng.normal(1.0, 2.0, shape)
    tx = torch.tensor(x, requires_grad=True)
    upstream = rng.standard_normal(shape)
    for parameter in layer.parameters():
        parameter.zero_grad()
    assert_close(layer.forward(x), reference(tx).detach(), np.float64, "eval output")
    reference(tx).backward(torch.tensor(upstream))
    assert_close(layer.backward(upstream), tx.grad, np.float64, "eval input gradient")
    assert_close(layer.weight.grad, reference.weight.grad, np.float64, "eval weight gradient")
    assert_close(layer.bias.grad, reference.bias.grad, np.float64, "eval bias gradient")


def test_batchnorm2d_normalises_each_channel_over_batch_and_positions_not_each_activation():
    rng = np.random.default_rng(0)
    # Every position has its own offset and scale: per-activation normalisation would remove them.
    offsets = rng.uniform(-5, 5, (1, 1, 4, 5))
    scales = rng.uniform(0.2, 5, (1, 1, 4, 5))
    x = rng.standard_normal((16, 3, 4, 5)) * scales + offsets
    out = ln.BatchNorm2D(3, eps=1e-12).forward(x)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0.0, atol=1e-6)
    np.testing.assert_allclose(out.var(axis=(0, 2, 3)), 1.0, atol=1e-6)
    position_means, position_vars = out.mean(axis=0), out.var(axis=0)
    assert np.abs(position_means).max() > 0.5
    assert np.abs(position_vars - 1).max() > 0.5


def test_batchnorm1d_normalises_each_feature_over_the_batch():
    x = np.random.default_rng(1).normal([[-3.0, 0.0, 8.0]], [[0.5, 2.0, 7.0]], (32, 3))
    out = ln.BatchNorm1D(3, eps=1e-12).forward(x)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(out.var(axis=0), 1.0, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_backward_with_a_non_uniform_upstream_gradient(kind):
    """A constant upstream gradient per channel has input gradient 0 in training (the mean is
    subtracted), which hides errors in the batch-mean terms; a gradient that varies across
    samples and positions does not."""
    shape = (6, 2, 3, 4) if kind == "2d" else (9, 2)
    rng = np.random.default_rng(3)
    layer = KINDS[kind][0](2).to(np.float64)
    randomise(layer, rng)
    x = rng.normal(2.0, 3.0, shape)
    layer.forward(x)
    assert np.abs(layer.backward(np.ones(shape))).max() < 1e-12
    varying = np.linspace(-3, 5, x.size).reshape(shape) ** 2 + rng.standard_normal(shape)
    check_against_twin(layer, x, np.float64)  # random upstream
    reference = torch.tensor(x, requires_grad=True)
    weight = torch.tensor(layer.weight.value, requires_grad=True)
    bias = torch.tensor(layer.bias.value, requires_grad=True)
    torch.nn.functional.batch_norm(reference, None, None, weight, bias, True, 0.1, layer.eps).backward(
        torch.tensor(varying))
    for parameter in layer.parameters():
        parameter.zero_grad()
    layer.forward(x)
    assert_close(layer.backward(varying), reference.grad, np.float64, "input gradient")
    assert_close(layer.weight.grad, weight.grad, np.float64, "weight gradient")
    assert_close(layer.bias.grad, bias.grad, np.float64, "bias gradient")


def test_eval_mode_uses_running_statistics_so_samples_are_independent():
    rng = np.random.default_rng(4)
    layer = ln.BatchNorm2D(2).to(np.float64)
    randomise(layer, rng)
    x = rng.standard_normal((4, 2, 3, 3))
    layer.eval()
    assert np.array_equal(layer.forward(x)[:1], layer.forward(x[:1]))
    inv_std = 1 / np.sqrt(layer.running_var + layer.eps)
    expected = ((x - layer.running_mean[:, None, None]) * (layer.weight.value * inv_std)[:, None, None]
                + layer.bias.value[:, None, None])
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12, atol=1e-12)
    layer.train()
    assert not np.allclose(layer.forward(x)[:1], layer.forward(x[:1]))


def test_eval_forward_leaves_running_statistics_alone_and_training_updates_them():
    layer = ln.BatchNorm1D(3)
    x = np.random.default_rng(5).normal(4.0, 2.0, (8, 3))
    layer.eval().forward(x)
    assert np.all(layer.running_mean == 0) and np.all(layer.running_var == 1)
    layer.train().forward(x)
    assert np.all(layer.running_mean != 0)


def test_training_on_one_value_per_channel_is_refused_but_eval_accepts_it():
    layer = ln.BatchNorm1D(4)
    with pytest.raises(ValueError, match=r"BatchNorm1D.*more than one value per channel"):
        layer.forward(np.ones((1, 4)))
    assert layer.eval().forward(np.ones((1, 4))).shape == (1, 4)


def test_the_one_fold_rule_takes_a_norm_after_a_layer_with_one_statistic_per_output():
    conv, dense = ln.Conv2D(1, 6, 5), ln.Dense(12, 4)
    assert ln.batchnorm.folds_into(conv, ln.BatchNorm2D(6))
    assert not ln.batchnorm.folds_into(conv, ln.BatchNorm2D(5))  # channels differ
    assert not ln.batchnorm.folds_into(conv, ln.BatchNorm1D(6))  # a 1-D norm after a convolution
    assert ln.batchnorm.folds_into(dense, ln.BatchNorm1D(4))
    assert not ln.batchnorm.folds_into(ln.ReLU(), ln.BatchNorm1D(4))
