"""The fused BatchNorm2D → MaxPool2D (→ ReLU) training step against the layers run one by one
and against PyTorch: same outputs bit for bit, same running statistics, gradients equal up to
rounding, on random shapes, window sizes and strides, with ties in the windows."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lenet5 import nn as ln
from lenet5.fast import FastModel
from lenet5.fast.fusion import NormPoolReLU, fuse
from lenet5.zoo.models import build_model

from ..nn.torch_twins import DTYPES, assert_close


def configs(count=16, seed=1998):
    rng = np.random.default_rng(seed)
    cases = []
    for index in range(count):
        kernel = int(rng.integers(1, 4))
        stride = kernel if index % 3 else max(1, kernel - 1)  # every third overlaps
        height, width = (int(rng.integers(kernel, 9)) for _ in range(2))
        shape = (int(rng.integers(2, 6)), int(rng.integers(1, 5)), height, width)
        with_relu = index % 2 == 0
        name = f"{'x'.join(map(str, shape))}-k{kernel}s{stride}-{'relu' if with_relu else 'norelu'}"
        cases.append(pytest.param(shape, kernel, stride, with_relu, id=name))
    return cases


BACKENDS = ["numpy", "compiled"]


def pair(shape, kernel, stride, with_relu, dtype, seed=0, backend="numpy"):
    """The same block twice, fused and unfused, with equal random weights (γ > 0)."""
    rng = np.random.default_rng(seed)
    gamma, beta = rng.uniform(0.5, 2.0, shape[1]), rng.standard_normal(shape[1])
    models = []
    for fused in (True, False):
        layers = [ln.BatchNorm2D(shape[1], momentum=0.3), ln.MaxPool2D(kernel, stride)]
        layers += [ln.ReLU()] if with_relu else []
        model = ln.Sequential(*layers).to(dtype)
        model.bn1.weight.value[...] = gamma
        model.bn1.bias.value[...] = beta
        models.append(FastModel(model, fused=fused, backend=backend))
    x = rng.standard_normal(shape).astype(dtype)
    x[0, :, : shape[2] // 2] = 0.5  # flat rows: ties in the windows, as MNIST's background gives
    return models, x


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, kernel, stride, with_relu", configs())
def test_fused_step_gives_the_layers_output_and_their_gradients(shape, kernel, stride, with_relu, dtype, backend):
    (fused, layers), x = pair(shape, kernel, stride, with_relu, dtype, backend=backend)
    out_fused, out_layers = fused.forward(x), layers.forward(x)
    assert any(isinstance(step, NormPoolReLU) for step in fused._run)
    if backend == "numpy":  # the same operations in the same order
        np.testing.assert_array_equal(out_fused, out_layers)
        np.testing.assert_array_equal(fused.model.bn1.running_mean, layers.model.bn1.running_mean)
        np.testing.assert_array_equal(fused.model.bn1.running_var, layers.model.bn1.running_var)
    else:  # the compiled kernel sums a channel's statistics in float64, one value at a time
        assert_close(out_fused, out_layers, dtype, "output")
        assert_close(fused.model.bn1.running_mean, layers.model.bn1.running_mean, dtype, "running mean")
        assert_close(fused.model.bn1.running_var, layers.model.bn1.running_var, dtype, "running variance")
    upstream = np.random.default_rng(1).standard_normal(out_fused.shape).astype(dtype)
    dx_fused, dx_layers = fused.backward(upstream), layers.backward(upstream)
    assert_close(dx_fused, dx_layers, dtype, "input gradient")
    assert_close(fused.model.bn1.weight.grad, layers.model.bn1.weight.grad, dtype, "γ gradient")
    assert_close(fused.model.bn1.bias.grad, layers.model.bn1.bias.grad, dtype, "β gradient")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape, kernel, stride, with_relu", configs(count=6, seed=7))
def test_fused_step_agrees_with_pytorch_in_float64(shape, kernel, stride, with_relu, backend):
    (fused, _), x = pair(shape, kernel, stride, with_relu, np.float64, seed=3, backend=backend)
    out = fused.forward(x)
    upstream = np.random.default_rng(5).standard_normal(out.shape)
    dx = fused.backward(upstream)
    tx = torch.tensor(x, requires_grad=True)
    gamma = torch.tensor(fused.model.bn1.weight.value, requires_grad=True)
    beta = torch.tensor(fused.model.bn1.bias.value, requires_grad=True)
    y = F.batch_norm(tx, None, None, gamma, beta, training=True, eps=fused.model.bn1.eps)
    y = F.max_pool2d(y, kernel, stride)
    y = F.relu(y) if with_relu else y
    y.backward(torch.tensor(upstream))
    assert_close(out, y, np.float64, "output")
    assert_close(dx, tx.grad, np.float64, "input gradient")
    assert_close(fused.model.bn1.weight.grad, gamma.grad, np.float64, "γ gradient")
    assert_close(fused.model.bn1.bias.grad, beta.grad, np.float64, "β gradient")


def test_a_non_positive_gamma_runs_the_layers_one_by_one_with_their_exact_results():
    (fused, layers), x = pair((4, 3, 6, 6), 2, 2, True, np.float64)
    for model in (fused, layers):
        model.model.bn1.weight.value[1] = -0.7  # max of a decreasing map is its min: cannot pool first
    out_fused, out_layers = fused.forward(x), layers.forward(x)
    np.testing.assert_array_equal(out_fused, out_layers)
    upstream = np.random.default_rng(2).standard_normal(out_fused.shape)
    np.testing.assert_array_equal(fused.backward(upstream), layers.backward(upstream))
    np.testing.assert_array_equal(fused.model.bn1.weight.grad, layers.model.bn1.weight.grad)


def test_only_training_batchnorm2d_then_unpadded_maxpool_is_fused():
    model = build_model("lenet5")
    steps = fuse(FastModel(model).steps)
    fused = [step for step in steps if isinstance(step, NormPoolReLU)]
    assert len(fused) == 2 and all(step.relu is not None for step in fused)
    assert len(steps) == len(model.layers) - 2 * 2
    model.eval()
    assert not any(isinstance(step, NormPoolReLU) for step in fuse(FastModel(model).steps))
    padded = FastModel(ln.Sequential(ln.BatchNorm2D(2), ln.MaxPool2D(3, padding=1), ln.ReLU())).steps
    assert fuse(padded) == padded
    averaged = FastModel(ln.Sequential(ln.BatchNorm2D(2), ln.AvgPool2D(2))).steps
    assert fuse(averaged) == averaged


def test_backward_before_forward_is_a_clear_error():
    with pytest.raises(RuntimeError, match="backward.*needs a forward"):
        FastModel(build_model("relu")).backward(np.ones((1, 10)))
