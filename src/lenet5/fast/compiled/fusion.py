"""BatchNorm2D → MaxPool2D (→ ReLU), compiled into one training kernel each way, one thread per
channel; and, for predictions, Conv2D → MaxPool2D (→ ReLU) as one kernel (at the end).

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

from ..elementwise import ReLUStep
from ..fusion import NormPoolReLU, PairThenReLU
from ..pooling import check_pool_input
from ..step import FusedSteps
from .conv import CompiledConvStep, conv_row, conv_row_pair
from .elementwise import CompiledScaledTanhStep, CompiledTanhStep, tanh_float32
from .jit import inline, kernel, prange, serial_kernel
from .pooling import (
    OFFSET, CompiledAvgPoolStep, CompiledMaxPoolStep, CompiledSubsamplingStep, replaces_maximum, window_maximum
)


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


# -- predictions: Conv2D → MaxPool2D (→ ReLU) -------------------------------------------------
# In the inference plan BatchNorm is folded into the convolution, and ReLU already follows the
# pooling (plan.py), which leaves conv → max-pool → ReLU in every block of lenet5, relu and
# lenet5-wide. Run as three steps, the conv's full output goes to memory and is read back by
# the pooling, whose output is read again by ReLU. Here each task computes the conv rows one
# row of windows needs into a buffer of its own, which stays in its core's cache, and writes
# only the pooled, clipped row. Measured on lenet5, the 10,000 test digits at batch 256, two
# threads: C1's three steps 87 ms, fused 58; C3's 88 and 69; the whole prediction 50k images/s
# unfused, 66k fused. A task does this for two maps at once, whose conv rows read the same
# input rows (`conv_row_pair`): 50k images/s one map a task, 66k two (the same day, slower).
@kernel
def conv_pool_forward(x, weight, bias, connected, stride_h, pool_h, pool_w, floor, out):
    """out (F, PH, PW, N) = max(floor, the maximum over each (pool_h, pool_w) window, which
    do not overlap, of conv_forward's output); floor is 0 for a ReLU after, −inf for none."""
    for task in prange((out.shape[0] + 1) // 2 * out.shape[1]):
        conv_pool_rows(x, weight, bias, connected, stride_h, pool_h, pool_w, floor, out, np.int64(task))


@serial_kernel
def conv_pool_rows(x, weight, bias, connected, stride_h, pool_h, pool_w, floor, out, task):
    """Row ph of maps f and f + 1 (f alone when it is the last) of conv_pool_forward, for
    task = (f / 2, ph): their conv rows computed together (`conv_row_pair`), then pooled."""
    maps, ph_count = out.shape[0], out.shape[1]
    f, ph = 2 * (task // ph_count), task % ph_count
    rows = conv_rows_for_pooling(x, weight, bias, connected, stride_h, pool_h, f, ph, maps)
    for m in range(min(2, maps - f)):
        max_pool_row(rows[m], pool_w, floor, out[f + m, ph])


@inline
def conv_rows_for_pooling(x, weight, bias, connected, stride_h, pool_h, f, ph, maps):
    """The pool_h conv rows that row ph of pooled maps f and f + 1 needs, (2, pool_h, OW·N);
    only map f's when f is the last map."""
    ow_count = x.shape[2] - weight.shape[3] + 1
    rows = np.empty((2, pool_h, ow_count * x.shape[3]), x.dtype)
    for i in range(pool_h):
        if f + 1 < maps:
            conv_row_pair(x, weight, bias, connected, stride_h, f, ph * pool_h + i, rows[0, i], rows[1, i])
        else:
            conv_row(x, weight, bias, connected, stride_h, f, ph * pool_h + i, rows[0, i])
    return rows


@inline
def max_pool_row(rows, pool_w, floor, pooled):
    """pooled (PW, N) = max(floor, each (pool_h, pool_w) window's maximum) of rows (pool_h, OW·N)."""
    batch, pool_h = pooled.shape[1], rows.shape[0]
    if pool_h == 2 and pool_w == 2:
        max_pool_row_2x2(rows, floor, pooled)
        return
    for pw in range(pooled.shape[0]):
        best = pooled[pw]
        for n in range(batch):
            best[n] = floor
        for i in range(pool_h):
            for j in range(pool_w):
                start = (pw * pool_w + j) * batch
                values = rows[i, start : start + batch]
                for n in range(batch):
                    value, current = values[n], best[n]
                    best[n] = value if replaces_maximum(value, current) else current


@inline
def max_pool_row_2x2(rows, floor, pooled):
    """max_pool_row for 2×2 windows: the same selects in the same order, floor first, but each
    window's four values in one pass, the running maximum in a register. One pass per window
    value through `pooled` took 9.3 µs for a row of C1 at batch 256, this 1.9 (measured)."""
    batch = pooled.shape[1]
    for pw in range(pooled.shape[0]):
        best = pooled[pw]
        left, right = 2 * pw * batch, (2 * pw + 1) * batch
        top_left, top_right = rows[0, left : left + batch], rows[0, right : right + batch]
        bottom_left, bottom_right = rows[1, left : left + batch], rows[1, right : right + batch]
        for n in range(batch):
            maximum = floor
            value = top_left[n]
            maximum = value if replaces_maximum(value, maximum) else maximum
            value = top_right[n]
            maximum = value if replaces_maximum(value, maximum) else maximum
            value = bottom_left[n]
            maximum = value if replaces_maximum(value, maximum) else maximum
            value = bottom_right[n]
            maximum = value if replaces_maximum(value, maximum) else maximum
            best[n] = maximum


class FusedPrediction(FusedSteps):
    """A conv and the steps after it (`steps`, the conv first, a pooling second or third) run as
    one prediction kernel (`run`). A layer the direct loops do not run (C5, wider than its
    output) runs its steps one after another; a training pass never sees these steps."""

    def __init__(self, *steps) -> None:
        super().__init__(steps[0].layer)
        self.steps = [step for step in steps if step is not None]
        self.conv = steps[0]

    def forward(self, x):
        conv, pool = self.conv.layer, self.pool.layer
        padded, weight, bias, (oh, ow), direct = self.conv.prepare(x)
        if not direct:
            for step in self.steps:
                x = step.forward(x)
            return x
        ph, pw = pool.output_shape((conv.out_channels, oh, ow))[1:]
        out = np.empty((conv.out_channels, ph, pw, padded.shape[3]), dtype=x.dtype)
        work = out.size * pool.kernel_size[0] * pool.kernel_size[1] * weight[0].size
        self.run(work, padded, weight, bias, out)
        return out

    def run(self, work, padded, weight, bias, out) -> None:
        raise NotImplementedError

    def backward(self, dout):
        raise RuntimeError(f"{self!r} runs predictions only; a training pass runs its steps one by one")


class CompiledConvPoolReLU(PairThenReLU, FusedPrediction):
    """Conv2D → MaxPool2D (→ ReLU) of an inference plan as one step (the kernel above): the
    same values as the steps one after another."""

    @staticmethod
    def fusible(conv, pool) -> bool:
        return (isinstance(conv, CompiledConvStep) and conv.direct and isinstance(pool, CompiledMaxPoolStep)
                and not conv.layer.training and not pool.layer.training and not any(pool.layer.padding)
                and tuple(pool.layer.stride) == tuple(pool.layer.kernel_size))

    def __init__(self, conv: CompiledConvStep, pool: CompiledMaxPoolStep, relu: ReLUStep | None = None) -> None:
        super().__init__(conv, pool, relu)
        self.pool, self.relu = pool, relu

    def run(self, work, padded, weight, bias, out):
        floor = out.dtype.type(0 if self.relu is not None else -np.inf)
        conv_pool_forward(work, padded, weight, bias, self.conv.connected, self.conv.layer.stride[0],
                          *self.pool.layer.kernel_size, floor, out)


# -- predictions: Conv2D → squashing → averaging pool (→ squashing) ----------------------------
# classic's and tanh's blocks (Conv2D → Tanh → AvgPool2D, once the inference plan has turned
# each sigmoid into a tanh) and lenet5-1998's (Conv2D → ScaledTanh → Subsampling → ScaledTanh).
# As above, the conv rows of one row of windows stay in a task's buffer; the squashing runs on
# them there, and only the pooled values go to memory. Tanh is the squashing A·tanh(S·z) with
# A = S = 1, and average pooling is subsampling with coefficient 1/(KH·KW) and bias 0: the
# same operations as the steps', in the same order.
@kernel
def conv_squash_pool_forward(x, weight, bias, connected, stride_h, squash, pool_h, pool_w, coefficient,
                             pool_bias, squash_after, exact, out):
    """out (F, PH, PW, N) = coefficient[f] · (the sum over each (pool_h, pool_w) window, which
    do not overlap, of A·tanh(S·conv_forward's output)) + pool_bias[f], then A'·tanh(S'·it)
    where squash_after = (A', S') is not (0, 0); squash = (A, S). tanh is the float32 rational
    one (`tanh_float32`), as the steps have it, or, with `exact`, the library's (float64)."""
    for task in prange((out.shape[0] + 1) // 2 * out.shape[1]):
        conv_squash_pool_rows(x, weight, bias, connected, stride_h, squash, pool_h, pool_w, coefficient,
                              pool_bias, squash_after, exact, out, np.int64(task))


@inline
def squashed(value, amplitude, slope, exact):
    return amplitude * (np.tanh(slope * value) if exact else tanh_float32(slope * value))


@serial_kernel
def conv_squash_pool_rows(x, weight, bias, connected, stride_h, squash, pool_h, pool_w, coefficient, pool_bias,
                          squash_after, exact, out, task):
    """Row ph of maps f and f + 1 (f alone when it is the last) of conv_squash_pool_forward,
    for task = (f / 2, ph)."""
    maps, ph_count = out.shape[0], out.shape[1]
    f, ph = 2 * (task // ph_count), task % ph_count
    rows = conv_rows_for_pooling(x, weight, bias, connected, stride_h, pool_h, f, ph, maps)
    amplitude, slope = squash
    for m in range(min(2, maps - f)):
        for i in range(pool_h):
            row = rows[m, i]
            for k in range(row.shape[0]):
                row[k] = squashed(row[k], amplitude, slope, exact)
        average_pool_row(rows[m], pool_w, coefficient[f + m], pool_bias[f + m], squash_after, exact, out[f + m, ph])


@inline
def average_pool_row(rows, pool_w, coefficient, pool_bias, squash_after, exact, pooled):
    """pooled (PW, N) = coefficient · each (pool_h, pool_w) window's sum of rows (pool_h, OW·N)
    + pool_bias, then squashed by squash_after = (A', S') unless A' is 0."""
    batch, pool_h = pooled.shape[1], rows.shape[0]
    after_amplitude, after_slope = squash_after
    for pw in range(pooled.shape[0]):
        total = pooled[pw]
        # window_sum's order: the window's first value, then the others in row order
        first = rows[0, pw * pool_w * batch : (pw * pool_w + 1) * batch]
        for n in range(batch):
            total[n] = first[n]
        for i in range(pool_h):
            for j in range(pool_w):
                if i == 0 and j == 0:
                    continue
                start = (pw * pool_w + j) * batch
                values = rows[i, start : start + batch]
                for n in range(batch):
                    total[n] += values[n]
        for n in range(batch):
            total[n] = total[n] * coefficient + pool_bias
        if after_amplitude != 0:
            for n in range(batch):
                total[n] = squashed(total[n], after_amplitude, after_slope, exact)


SQUASHINGS = (CompiledTanhStep, CompiledScaledTanhStep)
AVERAGING_POOLS = (CompiledAvgPoolStep, CompiledSubsamplingStep)


class CompiledConvSquashPool(FusedPrediction):
    """Conv2D → Tanh or ScaledTanh → AvgPool2D or Subsampling (→ Tanh or ScaledTanh) of an
    inference plan as one step (the kernel above)."""

    @classmethod
    def span(cls, steps, position) -> int:
        conv, squash, pool, after = (list(steps[position : position + 4]) + [None] * 3)[:4]
        fusible = (isinstance(conv, CompiledConvStep) and conv.direct and not conv.layer.training
                   and type(squash) in SQUASHINGS and type(pool) in AVERAGING_POOLS
                   and not any(getattr(pool.layer, "padding", (0, 0)))
                   and tuple(pool.layer.stride) == tuple(pool.layer.kernel_size))
        if not fusible:
            return 0
        return 4 if type(after) in SQUASHINGS else 3

    def __init__(self, conv, squash, pool, after=None) -> None:
        super().__init__(conv, squash, pool, after)
        self.squash, self.pool, self.after = squash, pool, after

    def run(self, work, padded, weight, bias, out):
        pool, real, maps = self.pool.layer, out.dtype.type, out.shape[0]
        if isinstance(self.pool, CompiledSubsamplingStep):
            coefficient, pool_bias = pool.weight.value.astype(out.dtype), pool.bias.value.astype(out.dtype)
        else:
            coefficient = np.full(maps, 1.0 / (pool.kernel_size[0] * pool.kernel_size[1]), out.dtype)
            pool_bias = np.zeros(maps, out.dtype)
        after = _amplitude_and_slope(self.after, real) if self.after is not None else (real(0), real(0))
        conv_squash_pool_forward(work, padded, weight, bias, self.conv.connected, self.conv.layer.stride[0],
                                 _amplitude_and_slope(self.squash, real), *pool.kernel_size, coefficient, pool_bias,
                                 after, out.dtype != np.float32, out)


def _amplitude_and_slope(step, real):
    """(A, S) of a Tanh (1, 1) or ScaledTanh step, in the arrays' dtype."""
    layer = step.layer
    return real(getattr(layer, "amplitude", 1.0)), real(getattr(layer, "slope", 1.0))
