"""BatchNorm2D → MaxPool2D (→ ReLU) run as one training step: the block after each conv of `lenet5`.

Run layer by layer, BatchNorm normalises every value of the conv maps, max-pooling keeps a
quarter of them, and ReLU clips those. When every γ is positive, the per-channel map
y ↦ (y − μ)·(1/σ)·γ + β is increasing, so it commutes with the window maximum: this step
pools the raw conv maps first and normalises only the maxima. Each floating-point
operation of that map is monotone too, so the output equals the layers' output bit for bit.

The backward pass never builds the full-size gradient at the BatchNorm output. With
a = γ/σ and M values per channel, BatchNorm's input gradient is
    dx = a·dy − (a/M)·(dβ + x̂·dγ),  x̂ = (x − μ)/σ,
and dy is the pooled gradient routed to each window's first maximum, so
    dx = b·x + c + (a·dz routed to the maxima),  b = −a·dγ/(σ·M),  c = −a·dβ/M − b·μ,
with dβ and dγ summed over the pooled positions only (dy is zero elsewhere).

A ReLU right after the pooling runs inside the step as well. The gradient routing can differ
from the layers' own only where rounding in the normalisation makes two different conv
outputs equal after it; both are valid (sub)gradients.
"""

from __future__ import annotations

import numpy as np

from . import parallel
from .activations import ReLU
from .batchnorm import BatchNorm2D
from .im2col import window_view
from .module import Module
from .pooling import MaxPool2D, _input_slice, _offsets


def training_steps(layers) -> list:
    """`layers` as a training pass runs them: each BatchNorm2D → MaxPool2D pair (with a ReLU
    after it, if there is one) becomes one `NormPoolReLU` step; everything else is itself."""
    def at(position):
        return layers[position] if position < len(layers) else None

    steps, position = [], 0
    while position < len(layers):
        layer, following = layers[position], at(position + 1)
        if NormPoolReLU.fusible(layer, following):
            relu = at(position + 2) if isinstance(at(position + 2), ReLU) else None
            steps.append(NormPoolReLU(layer, following, relu))
            position += 2 if relu is None else 3
        else:
            steps.append(layer)
            position += 1
    return steps


class NormPoolReLU(Module):
    """Runs `norm`, `pool` and optionally `relu` (the model's own layers, whose parameters,
    running statistics and gradients it uses) as one step; see the module docstring.

    Channels with γ ≤ 0 would need window minima instead of maxima; when any channel has
    one, the step runs the three layers one after another instead.
    """

    @staticmethod
    def fusible(norm, pool) -> bool:
        return (
            isinstance(norm, BatchNorm2D) and isinstance(pool, MaxPool2D)
            and norm.training and pool.training and not any(pool.padding)
        )

    def __init__(self, norm: BatchNorm2D, pool: MaxPool2D, relu: ReLU | None = None) -> None:
        super().__init__()
        self.norm, self.pool, self.relu = norm, pool, relu
        self._layers = [layer for layer in (norm, pool, relu) if layer is not None]

    def _forward(self, x):
        norm, pool = self.norm, self.pool
        if not (norm.weight.value > 0).all():
            self._cache = None
            for layer in self._layers:
                x = layer._forward(x)
            return x
        norm._check_input(x)
        pool._check(x)
        mean, inv_std, _, count = norm._batch_statistics(x.reshape(norm.num_features, -1), x.shape)
        windows = window_view(x, pool.kernel_size, pool.stride)
        maxima = pool._window_max(windows)
        hits = pool._first_maxima(windows, maxima)
        # The same operations, in the same order, as BatchNorm's forward pass.
        normalised = maxima
        normalised -= mean[:, None, None, None]
        normalised *= inv_std[:, None, None, None]
        gamma = norm.weight.value.astype(x.dtype, copy=False)
        out = normalised * gamma[:, None, None, None]
        out += norm.bias.value.astype(x.dtype, copy=False)[:, None, None, None]
        positive = None
        if self.relu is not None:
            np.maximum(out, 0, out=out)
            positive = out > 0
        self._cache = (x, hits, normalised, positive, mean, inv_std, gamma, count)
        return out

    def _backward(self, dout):
        if self._cache is None:
            for layer in reversed(self._layers):
                dout = layer._backward(dout)
            return dout
        x, hits, normalised, positive, mean, inv_std, gamma, count = self._cache
        norm, pool = self.norm, self.pool
        pooled_grad = dout * positive if positive is not None else dout
        channels = norm.num_features
        rows = pooled_grad.reshape(channels, -1)
        dbeta = rows.sum(axis=1)
        dgamma = np.einsum("ij,ij->i", rows, normalised.reshape(channels, -1))
        norm.weight.grad += dgamma
        norm.bias.grad += dbeta
        dbeta, dgamma = parallel.all_sum(np.stack([dbeta, dgamma]))  # over every share's values
        a = gamma * inv_std
        b = -a * inv_std * dgamma / count
        c = -a * dbeta / count - b * mean
        per_channel = (slice(None), None, None, None)
        dx = np.multiply(x, b[per_channel])
        dx += c[per_channel]
        routed = pooled_grad * a[per_channel]
        for hit, (i, j) in zip(hits, _offsets(pool.kernel_size)):
            dx[_input_slice(i, j, pool.stride, routed.shape[1:3])] += routed * hit
        return dx

    def output_shape(self, input_shape):
        for layer in self._layers:
            input_shape = layer.output_shape(input_shape)
        return input_shape

    def extra_repr(self):
        return ", ".join(repr(layer) for layer in self._layers)
