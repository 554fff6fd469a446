"""The engine's layers beside their PyTorch twins, and the comparison every twin test makes.

A twin is a function `(x, params) -> y` of torch tensors, where `params` holds one tensor per
parameter of the lenet5 layer, under the same name (`weight`, `bias`). It is built from the
layer before the layer's forward pass (BatchNorm's running statistics are copied then) and
called after it (Dropout's twin applies the mask the layer has just drawn).

Also here, because twin tests and finite-difference tests both need them: random parameter
settings, inputs safe for finite differences, and one small instance of every layer kind.
"""

from __future__ import annotations

import numpy as np
import torch

from lenet5 import nn as ln
from lenet5.torch_twin import twin_layer

TOLERANCE = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-4}
DTYPES = [np.float64, np.float32]


def max_relative_difference(ours, reference) -> float:
    """max|ours − reference| / max|reference|; the absolute difference where reference is 0."""
    if isinstance(reference, torch.Tensor):
        reference = reference.detach().numpy()
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    assert ours.shape == reference.shape, f"shape {ours.shape} != reference shape {reference.shape}"
    difference = np.abs(ours - reference).max(initial=0.0)
    scale = np.abs(reference).max(initial=0.0)
    return float(difference / scale) if scale > 0 else float(difference)


def assert_close(ours, reference, dtype, what: str) -> None:
    error = max_relative_difference(ours, reference)
    tolerance = TOLERANCE[np.dtype(dtype)]
    assert error < tolerance, f"{what}: max relative difference {error:.3g} >= {tolerance:g}"


# -- inputs and settings ----------------------------------------------------------------------
def distinct(shape, rng, spacing=0.1) -> np.ndarray:
    """Values all `spacing` apart in random order: no ties and no near-ties for max-pooling,
    so a finite-difference step never changes which element is the maximum."""
    count = int(np.prod(shape))
    return ((rng.permutation(count) - count / 2) * spacing).reshape(shape)


def away_from_zero(shape, rng, margin=0.1) -> np.ndarray:
    """Random values with |x| >= margin: ReLU's kink at 0 is never within a step."""
    return np.where(rng.random(shape) < 0.5, -1, 1) * (margin + np.abs(rng.standard_normal(shape)))


def randomise(layer, rng) -> None:
    """Random values for every parameter (everywhere, also outside a connection table, so a
    table that is not applied shows) and for BatchNorm's running statistics."""
    for _, parameter in layer.named_parameters():
        parameter.value[...] = rng.standard_normal(parameter.shape)
    if isinstance(layer, (ln.BatchNorm1D, ln.BatchNorm2D)):
        layer.running_mean = rng.standard_normal(layer.num_features).astype(layer.running_mean.dtype)
        layer.running_var = rng.uniform(0.5, 2.0, layer.num_features).astype(layer.running_var.dtype)


def connection_table(rng, out_channels, in_channels) -> np.ndarray:
    table = rng.integers(0, 2, (out_channels, in_channels))
    table[np.arange(out_channels), rng.integers(0, in_channels, out_channels)] = 1
    return table


# One small instance of every layer kind, with an input suited to finite differences.
LAYER_CASES = {
    "conv": lambda rng: (ln.Conv2D(3, 4, 3, stride=2, padding=1, rng=rng), rng.standard_normal((2, 3, 7, 7))),
    "conv_masked": lambda rng: (
        ln.Conv2D(3, 4, (3, 2), connections=connection_table(rng, 4, 3), bias=False, rng=rng),
        rng.standard_normal((2, 3, 6, 5)),
    ),
    "maxpool": lambda rng: (ln.MaxPool2D(3, stride=2, padding=1), distinct((2, 2, 7, 7), rng)),
    "avgpool": lambda rng: (ln.AvgPool2D(3, stride=2, padding=1), rng.standard_normal((2, 2, 7, 7))),
    "subsampling": lambda rng: (ln.Subsampling(2), rng.standard_normal((2, 2, 6, 6))),
    "batchnorm2d": lambda rng: (ln.BatchNorm2D(3), rng.standard_normal((4, 3, 3, 3))),
    "batchnorm1d": lambda rng: (ln.BatchNorm1D(5), rng.standard_normal((6, 5))),
    "relu": lambda rng: (ln.ReLU(), away_from_zero((3, 2, 3, 3), rng)),
    "sigmoid": lambda rng: (ln.Sigmoid(), rng.standard_normal((3, 2, 3, 3))),
    "tanh": lambda rng: (ln.Tanh(), rng.standard_normal((3, 2, 3, 3))),
    "scaled_tanh": lambda rng: (ln.ScaledTanh(), rng.standard_normal((3, 2, 3, 3))),
    "softmax": lambda rng: (ln.Softmax(), rng.standard_normal((4, 6))),
    "dense": lambda rng: (ln.Dense(5, 3, rng=rng), rng.standard_normal((4, 5))),
    "flatten": lambda rng: (ln.Flatten(), rng.standard_normal((2, 3, 2, 2))),
    "dropout": lambda rng: (ln.Dropout(0.4, rng=int(rng.integers(2**31))), rng.standard_normal((4, 2, 3, 3))),
}


def make_case(name: str, seed: int = 0):
    """(layer, x) for `LAYER_CASES[name]`, with random parameters and running statistics."""
    rng = np.random.default_rng([seed, 1998])  # not the stream of an upstream gradient seeded `seed`
    layer, x = LAYER_CASES[name](rng)
    randomise(layer, rng)
    return layer, x


# -- twins ------------------------------------------------------------------------------------
def twin(layer):
    """The PyTorch function computing what `layer` computes in its current mode: the one twin
    builder's module (`lenet5.torch_twin.twin_layer`), called with `params` in place of its
    parameters. BatchNorm's running statistics are the module's, updated in place: the
    function's `running_mean` and `running_var` attributes."""
    if isinstance(layer, ln.Dropout):
        def dropout(x, p):  # the mask the layer has just drawn, not a new one
            if layer._mask is None:
                return x.clone()
            keep = torch.from_numpy(np.array(layer._mask) != 0)
            return x * keep / (1 - layer.p)

        return dropout
    module = twin_layer(layer)

    def function(x, params):
        if any(buffer.is_floating_point() and buffer.dtype != x.dtype for buffer in module.buffers()):
            module.to(x.dtype)
        return torch.func.functional_call(module, params, (x,))

    if isinstance(layer, (ln.BatchNorm1D, ln.BatchNorm2D)):
        function.running_mean, function.running_var = module.running_mean, module.running_var
    return function


def map_loss_twin(j):
    """LeCun et al.'s MAP criterion on logits z = −y, summed (not averaged) over the patterns:
    Σ_n [ −z_{n,D} + log(e^{−j} + Σ_i e^{z_{n,i}}) ], with labels as weight rows t."""

    def loss(logits, targets):
        rubbish = torch.full((logits.shape[0], 1), -j, dtype=logits.dtype)
        log_total = torch.logsumexp(torch.cat([logits, rubbish], dim=1), dim=1)
        return (targets.sum(dim=1) * log_total - (targets * logits).sum(dim=1)).sum()

    return loss


def mle_loss_twin(logits, targets):
    """LeCun et al.'s MLE criterion on logits z = −y, summed (not averaged) over the patterns:
    Σ_n y_{n,D} = −Σ_n z_{n,D}, with labels as weight rows t."""
    return -(targets * logits).sum()


def check_against_twin(layer, x, dtype=np.float64, seed=0):
    """Forward and backward through `layer` and its twin with one random upstream gradient.

    Asserts that the output, the input gradient and every parameter gradient agree within
    TOLERANCE[dtype], that all are of `dtype`, and that forward left `x` and backward left
    the upstream gradient untouched. Returns the layer's output.
    """
    dtype = np.dtype(dtype)
    layer.to(dtype)
    x = np.array(x, dtype=dtype)
    function = twin(layer)
    params = {name: torch.tensor(p.value, requires_grad=True) for name, p in layer.named_parameters()}
    tx = torch.tensor(x, requires_grad=True)
    for parameter in layer.parameters():
        parameter.zero_grad()

    x_before = x.copy()
    out = layer.forward(x)
    assert np.array_equal(x, x_before), f"{layer!r}.forward modified its input"
    # Seeded apart from inputs drawn with the same seed: an upstream gradient equal to the
    # input makes BatchNorm's input gradient vanish and the comparison meaningless.
    upstream = np.random.default_rng([seed, 2015]).standard_normal(out.shape).astype(dtype)
    upstream_before = upstream.copy()
    dx = layer.backward(upstream)
    assert np.array_equal(upstream, upstream_before), f"{layer!r}.backward modified dout"

    reference = function(tx, params)
    reference.backward(torch.tensor(upstream))
    assert out.dtype == dtype and dx.dtype == dtype, (out.dtype, dx.dtype)
    assert_close(out, reference, dtype, f"{layer!r} output")
    assert_close(dx, tx.grad, dtype, f"{layer!r} input gradient")
    for name, parameter in layer.named_parameters():
        assert parameter.grad.dtype == dtype
        assert_close(parameter.grad, params[name].grad, dtype, f"{layer!r} {name} gradient")
    return out
