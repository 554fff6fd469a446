"""MaxPool2D, AvgPool2D and Subsampling, fast: batch-last windows, each kernel offset one
strided slice over every channel, position and sample."""

from __future__ import annotations

import numpy as np

from ..nn.pooling import kernel_offsets
from .step import Step, check_input
from .windows import input_slice, pad_spatial, unpad_spatial, window_sum, window_sum_backward, window_view


def check_pool_input(step: Step, x: np.ndarray, channels: int | None = None) -> None:
    pool = step.layer
    check_input(step, x, 4, "(N, C, H, W)" if channels is None else f"(N, {channels}, H, W)", channels)
    if min(pool.output_shape(x.shape[:3])[1:]) < 1:
        raise ValueError(f"{pool!r}: input of {x.shape[1]}x{x.shape[2]} pixels is smaller than "
                         f"the window {pool.kernel_size}")


def window_max(windows, kernel):
    """The maximum of each window of a `window_view`, (C, OH, OW, N)."""
    out = windows[:, 0, 0].copy()
    for i, j in kernel_offsets(kernel)[1:]:
        np.maximum(out, windows[:, i, j], out=out)
    return out


def first_maxima(windows, out, kernel):
    """hits[k] is True where kernel offset k holds the first maximum of its window."""
    offsets = kernel_offsets(kernel)
    hits = np.empty((len(offsets),) + out.shape, dtype=bool)
    unclaimed = np.ones(out.shape, dtype=bool)
    for hit, (i, j) in zip(hits, offsets):
        np.equal(windows[:, i, j], out, out=hit)
        hit &= unclaimed  # a later tie never takes a gradient already routed
        unclaimed ^= hit
    return hits


class MaxPoolStep(Step):
    """A `lenet5.nn.MaxPool2D` on (C, H, W, N) arrays, routing ties as it does."""

    def forward(self, x):
        pool = self.layer
        check_pool_input(self, x)
        padded = pad_spatial(x, pool.padding, -np.inf)
        windows = window_view(padded, pool.kernel_size, pool.stride)
        out = window_max(windows, pool.kernel_size)
        if pool.training:
            # Found now, while the input is still in cache, and a quarter of its size in bytes
            # for 2×2 windows: the backward pass then need not read the input again.
            hits, kept = first_maxima(windows, out, pool.kernel_size), None
        else:  # eval: a backward pass is rare, so find the maxima only if one comes
            hits, kept = None, (padded, out)
        self._cache = (padded.shape, out.shape, hits, kept)
        return out

    def backward(self, dout):
        pool = self.layer
        padded_shape, out_shape, hits, kept = self._cache
        if hits is None:
            padded, out = kept
            hits = first_maxima(window_view(padded, pool.kernel_size, pool.stride), out, pool.kernel_size)
        overlapping = pool.stride[0] < pool.kernel_size[0] or pool.stride[1] < pool.kernel_size[1]
        tiled = pool.stride == pool.kernel_size and all(
            size == count * step for size, count, step in zip(padded_shape[1:3], out_shape[1:3], pool.stride)
        )
        # Windows that tile the input write every pixel below: no need to zero it first.
        dpadded = (np.empty if tiled else np.zeros)(padded_shape, dtype=dout.dtype)
        for hit, (i, j) in zip(hits, kernel_offsets(pool.kernel_size)):
            target = dpadded[input_slice(i, j, pool.stride, out_shape[1:3])]
            if overlapping:
                target += dout * hit
            else:
                np.multiply(dout, hit, out=target)
        return unpad_spatial(dpadded, pool.padding)


class AvgPoolStep(Step):
    """A `lenet5.nn.AvgPool2D` on (C, H, W, N) arrays."""

    def forward(self, x):
        pool = self.layer
        check_pool_input(self, x)
        padded = pad_spatial(x, pool.padding)
        self._padded_shape = padded.shape
        out = window_sum(padded, pool.kernel_size, pool.stride)
        out *= 1.0 / (pool.kernel_size[0] * pool.kernel_size[1])
        return out

    def backward(self, dout):
        pool = self.layer
        dtotal = dout * (1.0 / (pool.kernel_size[0] * pool.kernel_size[1]))
        dpadded = window_sum_backward(dtotal, self._padded_shape, pool.kernel_size, pool.stride)
        return unpad_spatial(dpadded, pool.padding)


class SubsamplingStep(Step):
    """A `lenet5.nn.Subsampling` (LeNet-5 1998's S2 and S4) on (C, H, W, N) arrays."""

    def forward(self, x):
        layer = self.layer
        check_pool_input(self, x, layer.channels)
        sums = window_sum(x, layer.kernel_size, layer.stride)
        self._cache = (sums, x.shape)
        weight = layer.weight.value.astype(x.dtype, copy=False)[:, None, None, None]
        bias = layer.bias.value.astype(x.dtype, copy=False)[:, None, None, None]
        return sums * weight + bias

    def backward(self, dout):
        layer = self.layer
        sums, input_shape = self._cache
        layer.weight.grad += (dout * sums).sum(axis=(1, 2, 3))
        layer.bias.grad += dout.sum(axis=(1, 2, 3))
        dsums = dout * layer.weight.value.astype(dout.dtype, copy=False)[:, None, None, None]
        return window_sum_backward(dsums, input_shape, layer.kernel_size, layer.stride)
