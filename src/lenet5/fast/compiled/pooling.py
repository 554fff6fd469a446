"""MaxPool2D, AvgPool2D and Subsampling, compiled: one pass over each map, one thread per map.

Max-pooling keeps, for training, which offset of its window held the first maximum (an
int32 per output value, i·KW + j), as the reference routes ties: the backward pass then
reads neither the input nor the output again. Average pooling and LeNet-5's trainable
subsampling share one window-sum kernel and its adjoint.
"""

from __future__ import annotations

import numpy as np

from ..pooling import AvgPoolStep, MaxPoolStep, SubsamplingStep, check_pool_input
from ..windows import pad_spatial, unpad_spatial
from .jit import inline, kernel, prange, serial_kernel

# The offset of each window's first maximum is kept as an int32, not a byte: with a byte
# the maximum's loop would not vectorise (measured, C1's pooling at batch 64: 1.23 ms
# against 0.18 ms).
OFFSET = np.int32


@inline
def replaces_maximum(value, current):
    """Whether `value` replaces `current` as a window's running maximum. A strict > keeps the
    first of equal maxima; a NaN wins, and a NaN already held is never replaced. Written
    without branches (| and &) so that the loops calling it vectorise."""
    return (value > current) | ((value != value) & (current == current))


@inline
def window_maximum(x, c, oh, ow, kh, kw, stride_h, stride_w, best, where):
    """best[n] = the maximum of the (KH, KW) window of x (C, H, W, N) under output (c, oh, ow),
    for every sample n; where[n] (OFFSET) the offset i·KW + j of its first maximum. A NaN is
    the maximum of any window that holds one, as NumPy's np.maximum has it."""
    if kh == 2 and kw == 2:
        window_maximum_2x2(x, c, oh * stride_h, ow * stride_w, best, where)
        return
    first = x[c, oh * stride_h, ow * stride_w]
    for n in range(best.shape[0]):
        best[n] = first[n]
        where[n] = 0
    for i in range(kh):
        for j in range(kw):
            if i == 0 and j == 0:
                continue
            values = x[c, oh * stride_h + i, ow * stride_w + j]
            offset = OFFSET(i * kw + j)
            for n in range(best.shape[0]):
                value, current = values[n], best[n]
                take = replaces_maximum(value, current)  # both stores always made: no branch
                best[n] = value if take else current
                where[n] = offset if take else where[n]


@inline
def window_maximum_2x2(x, c, top, left, best, where):
    """window_maximum for a 2×2 window whose top-left pixel is (top, left): the same selects in
    the same order, but the four values in one pass, the running maximum and its offset in
    registers (a pass per window value through `best` and `where` measured about five times
    as slow, on the fused prediction kernel's rows)."""
    top_left, top_right = x[c, top, left], x[c, top, left + 1]
    bottom_left, bottom_right = x[c, top + 1, left], x[c, top + 1, left + 1]
    for n in range(best.shape[0]):
        maximum, offset = top_left[n], OFFSET(0)
        value = top_right[n]
        take = replaces_maximum(value, maximum)
        maximum, offset = (value, OFFSET(1)) if take else (maximum, offset)
        value = bottom_left[n]
        take = replaces_maximum(value, maximum)
        maximum, offset = (value, OFFSET(2)) if take else (maximum, offset)
        value = bottom_right[n]
        take = replaces_maximum(value, maximum)
        maximum, offset = (value, OFFSET(3)) if take else (maximum, offset)
        best[n] = maximum
        where[n] = offset


@kernel
def max_pool_forward(x, kh, kw, stride_h, stride_w, out, first_max):
    """out[c, oh, ow, n] = max over the window of x (C, H, W, N); first_max (OFFSET, same
    shape as out) the offset of its first maximum (`window_maximum`)."""
    for c in prange(out.shape[0]):  # one map per task (a loop, and its task's work: see jit.py)
        max_pool_forward_map(x, kh, kw, stride_h, stride_w, out, first_max, np.int64(c))


@serial_kernel
def max_pool_forward_map(x, kh, kw, stride_h, stride_w, out, first_max, c):
    for oh in range(out.shape[1]):
        for ow in range(out.shape[2]):
            window_maximum(x, c, oh, ow, kh, kw, stride_h, stride_w, out[c, oh, ow], first_max[c, oh, ow])


@kernel
def max_pool_backward(dout, first_max, kh, kw, stride_h, stride_w, dx):
    """dx (C, H, W, N), overwritten: each window's gradient at its first maximum."""
    for c in prange(dout.shape[0]):
        max_pool_backward_map(dout, first_max, kh, kw, stride_h, stride_w, dx, np.int64(c))


@serial_kernel
def max_pool_backward_map(dout, first_max, kh, kw, stride_h, stride_w, dx, c):
    _, oh_count, ow_count, batch = dout.shape
    zero = dout.dtype.type(0)
    dx[c] = 0
    for oh in range(oh_count):
        for ow in range(ow_count):
            grad = dout[c, oh, ow]
            where = first_max[c, oh, ow]
            for i in range(kh):
                for j in range(kw):
                    offset = OFFSET(i * kw + j)
                    target = dx[c, oh * stride_h + i, ow * stride_w + j]
                    for n in range(batch):
                        target[n] += grad[n] if where[n] == offset else zero  # a select: it vectorises


@kernel
def window_sum(x, kh, kw, stride_h, stride_w, sums):
    """sums[c, oh, ow, n] = Σ over the window of x (C, H, W, N), offsets in row order."""
    channels, oh_count, ow_count, batch = sums.shape
    for c in prange(channels):
        for oh in range(oh_count):
            for ow in range(ow_count):
                total = sums[c, oh, ow]
                first = x[c, oh * stride_h, ow * stride_w]
                for n in range(batch):
                    total[n] = first[n]
                for i in range(kh):
                    for j in range(kw):
                        if i == 0 and j == 0:
                            continue
                        values = x[c, oh * stride_h + i, ow * stride_w + j]
                        for n in range(batch):
                            total[n] += values[n]


@kernel
def window_sum_backward(dsums, scale, kh, kw, stride_h, stride_w, dx):
    """The adjoint of window_sum, times scale[c]: every pixel of a window receives
    scale[c] · its window's gradient; dx (C, H, W, N) overwritten."""
    channels, oh_count, ow_count, batch = dsums.shape
    for c in prange(channels):
        dx[c] = 0
        s = scale[c]
        for oh in range(oh_count):
            for ow in range(ow_count):
                grad = dsums[c, oh, ow]
                for i in range(kh):
                    for j in range(kw):
                        target = dx[c, oh * stride_h + i, ow * stride_w + j]
                        for n in range(batch):
                            target[n] += s * grad[n]


@kernel
def subsampling_forward(sums, weight, bias, out):
    """out[c] = weight[c] · sums[c] + bias[c]."""
    channels = sums.shape[0]
    flat_sums, flat_out = sums.reshape(channels, -1), out.reshape(channels, -1)
    for c in prange(channels):
        for k in range(flat_sums.shape[1]):
            flat_out[c, k] = flat_sums[c, k] * weight[c] + bias[c]


@kernel
def subsampling_parameter_grads(dout, sums, dweight, dbias):
    """dweight[c] = Σ dout[c]·sums[c], dbias[c] = Σ dout[c], in float64."""
    channels = dout.shape[0]
    flat_grad, flat_sums = dout.reshape(channels, -1), sums.reshape(channels, -1)
    for c in prange(channels):
        weight_total, bias_total = 0.0, 0.0
        for k in range(flat_grad.shape[1]):
            weight_total += flat_grad[c, k] * flat_sums[c, k]
            bias_total += flat_grad[c, k]
        dweight[c], dbias[c] = weight_total, bias_total


def _window_args(pool):
    return (*pool.kernel_size, *pool.stride)


class CompiledMaxPoolStep(MaxPoolStep):
    """A `lenet5.nn.MaxPool2D` on (C, H, W, N) arrays, routing ties as it does."""

    def forward(self, x):
        pool = self.layer
        check_pool_input(self, x)
        padded = np.ascontiguousarray(pad_spatial(x, pool.padding, -np.inf))
        out_shape = pool.output_shape(x.shape[:3]) + (x.shape[3],)
        out = np.empty(out_shape, dtype=x.dtype)
        first_max = np.empty(out_shape, dtype=OFFSET)
        max_pool_forward(padded.size, padded, *_window_args(pool), out, first_max)
        self._cache = (padded.shape, first_max)
        return out

    def backward(self, dout):
        pool = self.layer
        padded_shape, first_max = self._cache
        dpadded = np.empty(padded_shape, dtype=dout.dtype)
        max_pool_backward(dpadded.size, np.ascontiguousarray(dout), first_max, *_window_args(pool), dpadded)
        return unpad_spatial(dpadded, pool.padding)


class CompiledAvgPoolStep(AvgPoolStep):
    """A `lenet5.nn.AvgPool2D` on (C, H, W, N) arrays."""

    def forward(self, x):
        pool = self.layer
        check_pool_input(self, x)
        padded = np.ascontiguousarray(pad_spatial(x, pool.padding))
        out = np.empty(pool.output_shape(x.shape[:3]) + (x.shape[3],), dtype=x.dtype)
        window_sum(padded.size, padded, *_window_args(pool), out)
        out *= 1.0 / (pool.kernel_size[0] * pool.kernel_size[1])
        self._padded_shape = padded.shape
        return out

    def backward(self, dout):
        pool = self.layer
        channels = dout.shape[0]
        scale = np.full(channels, 1.0 / (pool.kernel_size[0] * pool.kernel_size[1]), dtype=dout.dtype)
        dpadded = np.empty(self._padded_shape, dtype=dout.dtype)
        window_sum_backward(dpadded.size, np.ascontiguousarray(dout), scale, *_window_args(pool), dpadded)
        return unpad_spatial(dpadded, pool.padding)


class CompiledSubsamplingStep(SubsamplingStep):
    """A `lenet5.nn.Subsampling` (LeNet-5 1998's S2 and S4) on (C, H, W, N) arrays."""

    def forward(self, x):
        layer = self.layer
        check_pool_input(self, x, layer.channels)
        x = np.ascontiguousarray(x)
        sums = np.empty(layer.output_shape(x.shape[:3]) + (x.shape[3],), dtype=x.dtype)
        window_sum(x.size, x, *_window_args(layer), sums)
        out = np.empty_like(sums)
        subsampling_forward(out.size, sums, layer.weight.value.astype(x.dtype), layer.bias.value.astype(x.dtype), out)
        self._cache = (sums, x.shape)
        return out

    def backward(self, dout):
        layer = self.layer
        sums, input_shape = self._cache
        dout = np.ascontiguousarray(dout)
        dweight = np.empty(layer.channels, dtype=dout.dtype)
        dbias = np.empty(layer.channels, dtype=dout.dtype)
        subsampling_parameter_grads(dout.size, dout, sums, dweight, dbias)
        layer.weight.grad += dweight
        layer.bias.grad += dbias
        dx = np.empty(input_shape, dtype=dout.dtype)
        window_sum_backward(dx.size, dout, layer.weight.value.astype(dout.dtype), *_window_args(layer), dx)
        return dx
