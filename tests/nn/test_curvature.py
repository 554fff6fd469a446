"""backward_curvature of every layer LeNet-5 (1998) uses, against diag(Jᵀ diag(d2out) J) built
from the full Jacobians torch autograd gives; the chained recursion through a 1998-style stack;
the exact Gauss–Newton diagonal of Dense + RBF + MAP; estimate_curvature's average."""

import numpy as np
import pytest
import torch

from lenet5 import nn as ln

from .test_conv import CONFIGS as CONV_CONFIGS, make_conv
from .torch_twins import assert_close, connection_table, make_case, map_loss_twin, randomise, twin


def jacobians(function, x, params):
    """{"input": J_x, name: J_p, ...}: the Jacobian of function(x, params)'s output w.r.t. x and
    each parameter, flattened to (output entries, input or parameter entries)."""
    names = list(params)
    tensors = (torch.tensor(x),) + tuple(torch.tensor(params[name]) for name in names)

    def flat_output(*args):
        return function(args[0], dict(zip(names, args[1:]))).reshape(-1)

    found = torch.autograd.functional.jacobian(flat_output, tensors, vectorize=True)
    return {key: j.reshape(j.shape[0], -1).numpy() for key, j in zip(["input"] + names, found)}


def gauss_newton_diagonal(jacobian, d2out):
    """diag(Jᵀ diag(d2out) J) = Σ_o J_oi² d2out_o, without the diagonal shortcut of the layers."""
    return np.einsum("oi,o,oi->i", jacobian, d2out.reshape(-1), jacobian)


def layer_by_layer(layer, x, d2out):
    """(d2x, {parameter name: curvature}) for one layer, from torch's Jacobian at input x."""
    params = {name: p.value for name, p in layer.named_parameters()}
    found = jacobians(twin(layer), x, params)
    curvatures = {name: gauss_newton_diagonal(found[name], d2out).reshape(params[name].shape) for name in params}
    return gauss_newton_diagonal(found["input"], d2out).reshape(x.shape), curvatures


def check_layer_curvature(layer, x, seed=0):
    """Forward, then backward_curvature of a random non-negative d2out, against torch."""
    layer.to(np.float64)
    x = np.array(x, dtype=np.float64)
    for parameter in layer.parameters():
        parameter.zero_curvature()
    out = layer.forward(x)
    d2out = np.random.default_rng([seed, 2]).uniform(0.1, 1.0, out.shape)
    d2out_before = d2out.copy()
    d2x = layer.backward_curvature(d2out)
    assert np.array_equal(d2out, d2out_before), f"{layer!r}.backward_curvature modified d2out"
    expected_d2x, expected = layer_by_layer(layer, x, d2out)
    assert d2x.dtype == np.float64 and (d2x >= 0).all()
    assert_close(d2x, expected_d2x, np.float64, f"{layer!r} input curvature")
    for name, parameter in layer.named_parameters():
        assert (parameter.curvature >= 0).all()
        assert_close(parameter.curvature, expected[name], np.float64, f"{layer!r} {name} curvature")


@pytest.mark.parametrize("config", CONV_CONFIGS)
def test_conv2d_curvature_is_the_gauss_newton_diagonal(config):
    """Every stride and padding of test_conv's configurations, with and without a table;
    with a table, the weights outside it get zero curvature, as they get zero gradient."""
    layer, x = make_conv(config, seed=5)
    check_layer_curvature(layer, x)
    if layer.connections is not None:
        assert not layer.weight.curvature[~layer.connections].any()


@pytest.mark.parametrize("name", ["subsampling", "scaled_tanh", "dense", "flatten"])
def test_layer_curvature_is_the_gauss_newton_diagonal(name):
    layer, x = make_case(name)
    check_layer_curvature(layer, x)


@pytest.mark.parametrize("kernel", [2, 3, (2, 3)])
def test_subsampling_curvature_for_other_windows(kernel):
    rng = np.random.default_rng(7)
    layer = ln.Subsampling(3, kernel_size=kernel)
    randomise(layer, rng)
    check_layer_curvature(layer, rng.standard_normal((2, 3, 7, 8)))


@pytest.mark.parametrize("trainable", [False, True], ids=["fixed", "trainable"])
@pytest.mark.parametrize("batch, inputs, outputs", [(1, 3, 2), (4, 7, 5), (3, 12, 10)])
def test_rbf_curvature_is_the_gauss_newton_diagonal(batch, inputs, outputs, trainable):
    rng = np.random.default_rng(batch + inputs)
    layer = ln.RBF(inputs, outputs, trainable=trainable, rng=rng)
    randomise(layer, rng)
    check_layer_curvature(layer, rng.standard_normal((batch, inputs)))


def test_curvature_accumulates_like_a_gradient_until_zeroed():
    layer, x = make_case("dense")
    layer.to(np.float64)
    d2out = np.ones((len(x), layer.out_features))
    layer.forward(x)
    layer.backward_curvature(d2out)
    once = layer.weight.curvature.copy()
    layer.backward_curvature(d2out)
    np.testing.assert_allclose(layer.weight.curvature, 2 * once)
    layer.weight.zero_curvature()
    assert not layer.weight.curvature.any()


@pytest.mark.parametrize("layer", [ln.MaxPool2D(2), ln.AvgPool2D(2), ln.BatchNorm2D(2), ln.Dropout(0.5),
                                   ln.ReLU(), ln.Softmax()], ids=lambda layer: type(layer).__name__)
def test_layers_outside_lenet5_1998_refuse_by_name(layer):
    with pytest.raises(NotImplementedError, match=f"^{type(layer).__name__} has no backward_curvature"):
        layer.backward_curvature(np.ones((1, 2, 2, 2)))


def tiny_1998_stack(seed=0):
    """Conv2D → Subsampling → ScaledTanh → Conv2D with a connection table → Subsampling →
    ScaledTanh → Flatten → Dense → ScaledTanh → RBF: LeNet-5's kinds of layer, at a size
    whose full Jacobians are small. Inputs (N, 1, 12, 12)."""
    rng = np.random.default_rng(seed)
    model = ln.Sequential(
        ln.Conv2D(1, 2, 3, rng=rng), ln.Subsampling(2), ln.ScaledTanh(),
        ln.Conv2D(2, 3, 2, connections=connection_table(rng, 3, 2), rng=rng), ln.Subsampling(3), ln.ScaledTanh(),
        ln.Flatten(), ln.Dense(12, 5, rng=rng), ln.ScaledTanh(), ln.RBF(5, 4, rng=rng),
    )
    for layer in model:
        if not isinstance(layer, ln.Conv2D):
            randomise(layer, rng)  # the convolutions keep their He weights, so the tanhs are not all saturated
    return model.to(np.float64), rng.standard_normal((3, 1, 12, 12))


def test_the_chained_recursion_through_a_1998_stack_matches_torch_layer_by_layer():
    """The paper's recursion is a diagonal approximation: each layer passes on diag(Jᵀ D J) for
    its own J only, so the result is not the exact diag(Jᵀ H J) of the whole network. This
    checks that Sequential chains the layers' curvatures the way that recursion does, each
    step computed from the layer's full torch Jacobian at the input the forward pass gave it."""
    model, x = tiny_1998_stack()
    logits = model.forward(x)
    # A random d2logits rather than MAPLoss's: at random weights every penalty is far above
    # j and the loss curvature is ~1e-8, too small for a comparison to mean anything.
    d2logits = np.random.default_rng(3).uniform(0.1, 1.0, logits.shape)
    for parameter in model.parameters():
        parameter.zero_curvature()
    d2x = model.backward_curvature(d2logits)

    inputs, value = [], x
    for layer in model:
        inputs.append(value)
        value = twin(layer)(torch.tensor(value), {n: torch.tensor(p.value) for n, p in layer.named_parameters()})
        value = value.numpy()
    np.testing.assert_allclose(value, logits, rtol=1e-12)
    expected = {}
    d2 = d2logits
    for name, layer, layer_input in reversed(list(zip(model.layer_names, model.layers, inputs))):
        d2, curvatures = layer_by_layer(layer, layer_input, d2)
        expected.update({f"{name}.{key}": value for key, value in curvatures.items()})
    assert_close(d2x, d2, np.float64, "input curvature")
    for name, parameter in model.named_parameters():
        assert parameter.curvature.any(), name
        assert_close(parameter.curvature, expected[name], np.float64, f"{name} curvature")


def dense_rbf(seed=0, trainable=True):
    rng = np.random.default_rng(seed)
    model = ln.Sequential(ln.Dense(6, 4, rng=rng), ln.RBF(4, 3, trainable=trainable, rng=rng))
    randomise(model, rng)
    model.fc1.weight.value *= 0.3  # penalties of a few units, where the curvature is large
    return model.to(np.float64), rng.standard_normal((5, 6)), rng.integers(0, 3, 5)


def dense_rbf_logits(x, params):
    hidden = x @ params["fc1.weight"].T + params["fc1.bias"]
    return -((hidden[:, None, :] - params["rbf1.centers"][None]) ** 2).sum(dim=2)


def test_dense_rbf_map_curvature_is_the_exact_gauss_newton_diagonal():
    """For Dense + RBF every parameter reaches the logits through one unit (a weight W_kj through
    hidden unit k only, a centre c_ij through logit i only), so the recursion drops no term:
    the curvature is exactly diag(J_θᵀ D J_θ), J_θ the Jacobian of all logits w.r.t. the
    parameters and D the loss curvature MAPLoss.curvature gives, summed over patterns. (The
    full Gauss–Newton matrix uses the loss Hessian H instead of D; D is H's diagonal, and
    the −p_i·p_k terms off it are the loss's own diagonal approximation.)"""
    model, x, labels = dense_rbf()
    loss = ln.MAPLoss()
    ln.estimate_curvature(model, loss, x, labels, batch_size=2)

    params = {name: p.value for name, p in model.named_parameters()}
    found = jacobians(dense_rbf_logits, x, params)
    d2logits = loss.curvature(model.forward(x), labels)
    assert d2logits.max() > 1e-2
    for name, parameter in model.named_parameters():
        exact = gauss_newton_diagonal(found[name], d2logits).reshape(parameter.shape) / len(x)
        assert_close(parameter.curvature, exact, np.float64, f"{name} curvature")


def test_estimate_curvature_is_the_average_over_patterns_whatever_the_batch_size():
    model, x = tiny_1998_stack(seed=2)
    labels = np.array([2, 0, 1])
    loss = ln.MAPLoss()
    for parameter in model.parameters():
        parameter.curvature += 7.0  # stale values a new estimate must clear
    ln.estimate_curvature(model, loss, x, labels, batch_size=3)
    together = {name: p.curvature.copy() for name, p in model.named_parameters()}
    ln.estimate_curvature(model, loss, x, labels, batch_size=2)
    for name, parameter in model.named_parameters():
        assert_close(parameter.curvature, together[name], np.float64, name)

    total = {name: np.zeros(p.shape) for name, p in model.named_parameters()}
    for n in range(3):
        ln.estimate_curvature(model, loss, x[n : n + 1], labels[n : n + 1])
        for name, parameter in model.named_parameters():
            total[name] += parameter.curvature
    for name, parameter in model.named_parameters():
        assert_close(together[name], total[name] / 3, np.float64, name)


def test_estimate_curvature_refuses_mismatched_patterns_and_labels():
    model, x = tiny_1998_stack()
    with pytest.raises(ValueError, match="found 3 patterns and 2 labels"):
        ln.estimate_curvature(model, ln.MAPLoss(), x, np.array([0, 1]))
    with pytest.raises(ValueError, match="batch_size must be a positive int, found 0"):
        ln.estimate_curvature(model, ln.MAPLoss(), x, np.array([0, 1, 2]), batch_size=0)
