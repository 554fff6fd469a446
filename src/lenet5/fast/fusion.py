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

from ..nn.pooling import kernel_offsets
from .elementwise import ReLUStep
from .norm import BatchNormStep
from .pooling import MaxPoolStep, check_pool_input, first_maxima, window_max
from .step import FusedSteps
from .windows import input_slice, window_view


def fuse(steps, kinds=None) -> list:
    """`steps` with every run of steps that one of `kinds` (a tuple) takes (its `span`) replaced
    by one step of that kind; everything else is itself. `kinds` is a backend's: by default
    `NormPoolReLU` (BatchNorm2D → MaxPool2D → ReLU), as a training pass runs them; for
    predictions, the compiled backend's Conv2D → pooling steps."""
    kinds = (NormPoolReLU,) if kinds is None else kinds
    fused, position = [], 0
    while position < len(steps):
        for kind in kinds:
            count = kind.span(steps, position)
            if count:
                fused.append(kind(*steps[position : position + count]))
                position += count
                break
        else:
            fused.append(steps[position])
            position += 1
    return fused


class PairThenReLU:
    """A fused step that takes a pair its `fusible` accepts, and the ReLU after it if there is one."""

    @staticmethod
    def fusible(first, second) -> bool:
        raise NotImplementedError

    @classmethod
    def span(cls, steps, position) -> int:
        """How many of `steps`, from `position` on, one such step runs: 0, 2 or 3."""
        if position + 1 >= len(steps) or not cls.fusible(steps[position], steps[position + 1]):
            return 0
        return 3 if position + 2 < len(steps) and isinstance(steps[position + 2], ReLUStep) else 2


class NormPoolReLU(PairThenReLU, FusedSteps):
    """Runs the steps `norm`, `pool` and optionally `relu` (of the model's own layers, whose
    parameters, running statistics and gradients it uses) as one step; see the module
    docstring.

    Channels with γ ≤ 0 would need window minima instead of maxima; when any channel has
    one, the step runs the three steps one after another instead.
    """

    @staticmethod
    def fusible(norm, pool) -> bool:
        return (
            isinstance(norm, BatchNormStep) and isinstance(pool, MaxPoolStep) and norm.layer.ndim == 4
            and norm.layer.training and pool.layer.training and not any(pool.layer.padding)
        )

    def __init__(self, norm: BatchNormStep, pool: MaxPoolStep, relu: ReLUStep | None = None) -> None:
        super().__init__(norm.layer)
        self.norm, self.pool, self.relu = norm, pool, relu
        self.steps = [step for step in (norm, pool, relu) if step is not None]

    def forward(self, x):
        norm, pool = self.norm.layer, self.pool.layer
        if not (norm.weight.value > 0).all():
            self._cache = None
            for step in self.steps:
                x = step.forward(x)
            return x
        self.norm.check(x)
        check_pool_input(self.pool, x)
        mean, inv_std, _, count = self.norm.batch_statistics(x.reshape(norm.num_features, -1))
        windows = window_view(x, pool.kernel_size, pool.stride)
        maxima = window_max(windows, pool.kernel_size)
        hits = first_maxima(windows, maxima, pool.kernel_size)
        # The same operations, in the same order, as BatchNormStep's forward pass.
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

    def backward(self, dout):
        if self._cache is None:
            for step in reversed(self.steps):
                dout = step.backward(dout)
            return dout
        x, hits, normalised, positive, mean, inv_std, gamma, count = self._cache
        norm, pool = self.norm.layer, self.pool.layer
        pooled_grad = dout * positive if positive is not None else dout
        channels = norm.num_features
        rows = pooled_grad.reshape(channels, -1)
        dbeta = rows.sum(axis=1)
        dgamma = np.einsum("ij,ij->i", rows, normalised.reshape(channels, -1))
        norm.weight.grad += dgamma
        norm.bias.grad += dbeta
        a = gamma * inv_std
        b = -a * inv_std * dgamma / count
        c = -a * dbeta / count - b * mean
        per_channel = (slice(None), None, None, None)
        dx = np.multiply(x, b[per_channel])
        dx += c[per_channel]
        routed = pooled_grad * a[per_channel]
        for hit, (i, j) in zip(hits, kernel_offsets(pool.kernel_size)):
            dx[input_slice(i, j, pool.stride, routed.shape[1:3])] += routed * hit
        return dx
