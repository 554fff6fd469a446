"""BatchNorm2D → MaxPool2D (→ ReLU), compiled into one training kernel each way, one thread per channel.

The arithmetic is that of `lenet5.fast.fusion` (read its docstring first): while every γ is
positive, normalising commutes with the window maximum, so the forward pass pools the raw
conv maps and normalises only the maxima, and the backward pass writes BatchNorm's input
gradient as dx = b·x + c + (a·dz routed to each window's first maximum). Compiled, a
channel's statistics, pooling, normalisation and ReLU are three passes over its values in
one thread, and its backward pass two, with no full-size intermediate array.

A channel's mean and variance are summed in float64, in one thread, in a fixed order.
"""

from __future__ import annotations

import math

import numpy as np

from ..fusion import NormPoolReLU
from ..pooling import check_pool_input
from .jit import inline, kernel, prange, serial_kernel
from .pooling import OFFSET, window_maximum


@kernel
def norm_pool_relu_forward(x, gamma, beta, eps, kh, kw, stride_h, stride_w, relu,
                           out, first_max, normalised, mean, inv_std, var):
    """x (C, H, W, N) -> out, first_max and the normalised maxima (C, OH, OW, N); the batch
    mean, 1/σ and biased variance of each channel."""
    for c in prange(x.shape[0]):  # one channel per task (a loop, and its task's work: see jit.py)
        norm_pool_relu_forward_channel(x, gamma, beta, eps, kh, kw, stride_h, stride_w, relu,
                                       out, first_max, normalised, mean, inv_std, var, np.int64(c))


@serial_kernel
def norm_pool_relu_forward_channel(x, gamma, beta, eps, kh, kw, stride_h, stride_w, relu,
                                   out, first_max, normalised, mean, inv_std, var, c):
    """Channel c of norm_pool_relu_forward."""
    height = x.shape[1]
    _, oh_count, ow_count, batch = out.shape
    count = x[0].size
    total = 0.0
    for h in range(height):
        total += row_sum(x[c, h].reshape(-1))
    channel_mean = total / count
    squares = 0.0
    for h in range(height):
        squares += row_squared_deviations(x[c, h].reshape(-1), x.dtype.type(channel_mean))
    channel_var = squares / count
    mean[c], var[c] = channel_mean, channel_var
    inv_std[c] = 1.0 / math.sqrt(channel_var + eps)
    # y = (x − μ)·(1/σ)·γ + β, in the dtype of x, in the reference's order of operations
    m, s, g, b = x.dtype.type(channel_mean), inv_std[c], gamma[c], beta[c]
    for oh in range(oh_count):
        for ow in range(ow_count):
            best = normalised[c, oh, ow]
            window_maximum(x, c, oh, ow, kh, kw, stride_h, stride_w, best, first_max[c, oh, ow])
            result = out[c, oh, ow]
            for n in range(batch):
                z = (best[n] - m) * s
                best[n] = z
                y = z * g + b
                result[n] = max(y, 0) if relu and y == y else y


@inline
def row_sum(values):
    """Σ values, summed in their own dtype (a float32 sum vectorises), returned as float64."""
    total = values.dtype.type(0)
    for k in range(values.shape[0]):
        total += values[k]
    return float(total)


@inline
def row_squared_deviations(values, mean):
    """Σ (values − mean)², as row_sum."""
    total = values.dtype.type(0)
    for k in range(values.shape[0]):
        deviation = values[k] - mean
        total += deviation * deviation
    return float(total)


@kernel
def norm_pool_relu_backward(dout, out, relu, first_max, normalised, x, mean, inv_std, gamma, count,
                            kh, kw, stride_h, stride_w, dx, dgamma, dbeta):
    """dx (C, H, W, N), overwritten; dgamma and dbeta (C,) of this batch."""
    for c in prange(dout.shape[0]):
        norm_pool_relu_backward_channel(dout, out, relu, first_max, normalised, x, mean, inv_std, gamma, count,
                                        kh, kw, stride_h, stride_w, dx, dgamma, dbeta, np.int64(c))


@serial_kernel
def norm_pool_relu_backward_channel(dout, out, relu, first_max, normalised, x, mean, inv_std, gamma, count,
                                    kh, kw, stride_h, stride_w, dx, dgamma, dbeta, c):
    """Channel c of norm_pool_relu_backward."""
    _, oh_count, ow_count, batch = dout.shape
    zero = dout.dtype.type(0)
    # dβ and dγ over the pooled positions: the gradient is zero everywhere else.
    beta_total, gamma_total = 0.0, 0.0
    for oh in range(oh_count):
        grad, kept, xhat = dout[c, oh].reshape(-1), out[c, oh].reshape(-1), normalised[c, oh].reshape(-1)
        beta_part, gamma_part = zero, zero
        for k in range(grad.shape[0]):
            g = grad[k] if (not relu or kept[k] > 0) else zero
            beta_part += g
            gamma_part += g * xhat[k]
        beta_total += beta_part
        gamma_total += gamma_part
    dbeta[c], dgamma[c] = beta_total, gamma_total
    a = gamma[c] * inv_std[c]
    slope = -a * inv_std[c] * dgamma[c] / count
    shift = -a * dbeta[c] / count - slope * mean[c]
    source, target = x[c].reshape(-1), dx[c].reshape(-1)
    for k in range(source.shape[0]):
        target[k] = source[k] * slope + shift
    for oh in range(oh_count):
        for ow in range(ow_count):
            grad, kept, where = dout[c, oh, ow], out[c, oh, ow], first_max[c, oh, ow]
            for i in range(kh):
                for j in range(kw):
                    offset = OFFSET(i * kw + j)
                    pixel = dx[c, oh * stride_h + i, ow * stride_w + j]
                    for n in range(batch):
                        # a select, not a branch, so that the loop vectorises
                        hit = (where[n] == offset) & ((not relu) | (kept[n] > 0))
                        pixel[n] += a * grad[n] if hit else zero


class CompiledNormPoolReLU(NormPoolReLU):
    """`lenet5.fast.fusion.NormPoolReLU` on the kernels above; like it, a channel with γ ≤ 0
    sends the pass through the three steps one after another."""

    def forward(self, x):
        norm, pool = self.norm.layer, self.pool.layer
        self._compiled = (norm.weight.value > 0).all()
        if not self._compiled:
            return super().forward(x)
        self.norm.check(x)
        check_pool_input(self.pool, x)
        x = np.ascontiguousarray(x)
        channels = norm.num_features
        out_shape = pool.output_shape(x.shape[:3]) + (x.shape[3],)
        out = np.empty(out_shape, dtype=x.dtype)
        first_max = np.empty(out_shape, dtype=OFFSET)
        normalised = np.empty(out_shape, dtype=x.dtype)
        mean, var = np.empty(channels), np.empty(channels)
        inv_std = np.empty(channels, dtype=x.dtype)
        gamma = norm.weight.value.astype(x.dtype)
        norm_pool_relu_forward(x.size, x, gamma, norm.bias.value.astype(x.dtype), norm.eps,
                               *pool.kernel_size, *pool.stride, self.relu is not None,
                               out, first_max, normalised, mean, inv_std, var)
        count = x.size // channels
        norm.update_running_statistics(mean.astype(x.dtype), var, count)
        self._cache = (x, out, first_max, normalised, mean.astype(x.dtype), inv_std, gamma, count)
        return out

    def backward(self, dout):
        if not self._compiled:
            return super().backward(dout)
        x, out, first_max, normalised, mean, inv_std, gamma, count = self._cache
        norm, pool = self.norm.layer, self.pool.layer
        dx = np.empty_like(x)
        dgamma = np.empty(norm.num_features, dtype=dout.dtype)
        dbeta = np.empty(norm.num_features, dtype=dout.dtype)
        norm_pool_relu_backward(x.size, np.ascontiguousarray(dout), out, self.relu is not None, first_max,
                                normalised, x, mean, inv_std, gamma, count, *pool.kernel_size, *pool.stride,
                                dx, dgamma, dbeta)
        norm.weight.grad += dgamma
        norm.bias.grad += dbeta
        return dx
