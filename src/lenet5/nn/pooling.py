"""Pooling: MaxPool2D, AvgPool2D and the trainable Subsampling layer of LeNet-5 (1998).

All three work on `window_view` and loop over the KH×KW kernel offsets only: each offset is
one strided slice of the input covering every sample, channel and output position at once.
"""

from __future__ import annotations

import numpy as np

from .checks import check_input, positive_int
from .im2col import output_size, pad_spatial, pair, unpad_spatial, window_view
from .module import Module
from .parameter import Parameter


def _offsets(kernel):
    return [(i, j) for i in range(kernel[0]) for j in range(kernel[1])]


def _input_slice(i, j, stride, out_hw):
    """The input pixels that kernel offset (i, j) reads, for all output positions."""
    (sh, sw), (oh, ow) = stride, out_hw
    return (slice(None), slice(i, i + sh * oh, sh), slice(j, j + sw * ow, sw), slice(None))


def window_sum(padded, kernel, stride):
    """Σ over each KH×KW window of a (C, H, W, N) array -> (C, OH, OW, N)."""
    windows = window_view(padded, kernel, stride)
    total = windows[:, 0, 0].copy()
    for i, j in _offsets(kernel)[1:]:
        total += windows[:, i, j]
    return total


def window_sum_backward(dtotal, padded_shape, kernel, stride):
    """The adjoint of `window_sum`: every pixel of a window receives the window's gradient."""
    dx = np.zeros(padded_shape, dtype=dtotal.dtype)
    out_hw = dtotal.shape[1:3]
    overlapping = stride[0] < kernel[0] or stride[1] < kernel[1]
    for i, j in _offsets(kernel):
        target = dx[_input_slice(i, j, stride, out_hw)]
        if overlapping:
            target += dtotal
        else:  # non-overlapping windows write each pixel once: a copy, no read-add
            target[...] = dtotal
    return dx


class _Pool2D(Module):
    prefix = "pool"

    def __init__(self, kernel_size, stride=None, padding=0) -> None:
        super().__init__()
        name = type(self).__name__
        self.kernel_size = pair(kernel_size, "kernel_size", name)
        self.stride = self.kernel_size if stride is None else pair(stride, "stride", name)
        self.padding = pair(padding, "padding", name)
        if min(self.kernel_size) < 1 or min(self.stride) < 1:
            raise ValueError(
                f"{name}: kernel_size and stride must be >= 1, found "
                f"kernel_size={self.kernel_size}, stride={self.stride}"
            )
        if not all(0 <= p <= k // 2 for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(
                f"{name}: padding must be between 0 and half the kernel size, found "
                f"padding={self.padding} for kernel_size={self.kernel_size}"
            )

    def output_shape(self, input_shape):
        channels, height, width = input_shape
        return (
            channels,
            output_size(height, self.kernel_size[0], self.stride[0], self.padding[0]),
            output_size(width, self.kernel_size[1], self.stride[1], self.padding[1]),
        )

    def _check(self, x):
        check_input(self, x, 4, "(N, C, H, W)")
        _, height, width, _ = x.shape
        if min(self.output_shape((1, height, width))[1:]) < 1:
            raise ValueError(
                f"{self!r}: input of {height}x{width} pixels is smaller than the window {self.kernel_size}"
            )

    def extra_repr(self):
        text = f"kernel_size={self.kernel_size}, stride={self.stride}"
        if any(self.padding):
            text += f", padding={self.padding}"
        return text


class MaxPool2D(_Pool2D):
    """The maximum of each KH×KW window.

    Args:
        kernel_size: an int or (height, width). stride: defaults to kernel_size; smaller
            strides give overlapping windows. padding: implicit −∞ border, at most half the
            kernel (as in PyTorch).

    Shape:
        (N, C, H, W) -> (N, C, OH, OW), OH = floor((H + 2·PH − KH) / SH) + 1, likewise OW.

    Ties: the gradient of a window goes to exactly one input, the first maximal element in
    row-major order of the window (top row first, then left to right), as PyTorch's CPU
    kernel does. On MNIST's flat zero background ties are the rule, not the exception.
    """

    def _forward(self, x):
        self._check(x)
        padded = pad_spatial(x, self.padding, -np.inf)
        windows = window_view(padded, self.kernel_size, self.stride)
        out = self._window_max(windows)
        if self.training:
            # Found now, while the input is still in cache, and a quarter of its size in bytes
            # for 2×2 windows: the backward pass then need not read the input again.
            hits, kept = self._first_maxima(windows, out), None
        else:  # eval: a backward pass is rare, so find the maxima only if one comes
            hits, kept = None, (padded, out)
        self._cache = (padded.shape, out.shape, hits, kept)
        return out

    def _window_max(self, windows):
        """The maximum of each window of a `window_view`, (C, OH, OW, N)."""
        out = windows[:, 0, 0].copy()
        for i, j in _offsets(self.kernel_size)[1:]:
            np.maximum(out, windows[:, i, j], out=out)
        return out

    def _first_maxima(self, windows, out):
        """hits[k] is True where kernel offset k holds the first maximum of its window."""
        offsets = _offsets(self.kernel_size)
        hits = np.empty((len(offsets),) + out.shape, dtype=bool)
        unclaimed = np.ones(out.shape, dtype=bool)
        for hit, (i, j) in zip(hits, offsets):
            np.equal(windows[:, i, j], out, out=hit)
            hit &= unclaimed  # a later tie never takes a gradient already routed
            unclaimed ^= hit
        return hits

    def _backward(self, dout):
        padded_shape, out_shape, hits, kept = self._cache
        if hits is None:
            padded, out = kept
            hits = self._first_maxima(window_view(padded, self.kernel_size, self.stride), out)
        overlapping = self.stride[0] < self.kernel_size[0] or self.stride[1] < self.kernel_size[1]
        tiled = self.stride == self.kernel_size and all(
            size == count * step for size, count, step in zip(padded_shape[1:3], out_shape[1:3], self.stride)
        )
        # Windows that tile the input write every pixel below: no need to zero it first.
        dpadded = (np.empty if tiled else np.zeros)(padded_shape, dtype=dout.dtype)
        for hit, (i, j) in zip(hits, _offsets(self.kernel_size)):
            target = dpadded[_input_slice(i, j, self.stride, out_shape[1:3])]
            if overlapping:
                target += dout * hit
            else:
                np.multiply(dout, hit, out=target)
        return unpad_spatial(dpadded, self.padding)


class AvgPool2D(_Pool2D):
    """The mean of each KH×KW window (padding counts as zeros, PyTorch's default).

    Args:
        kernel_size, stride (default kernel_size), padding: as for MaxPool2D.

    Shape:
        (N, C, H, W) -> (N, C, OH, OW), OH = floor((H + 2·PH − KH) / SH) + 1, likewise OW.
    """

    def _forward(self, x):
        self._check(x)
        padded = pad_spatial(x, self.padding)
        self._padded_shape = padded.shape
        out = window_sum(padded, self.kernel_size, self.stride)
        out *= 1.0 / (self.kernel_size[0] * self.kernel_size[1])
        return out

    def _backward(self, dout):
        dtotal = dout * (1.0 / (self.kernel_size[0] * self.kernel_size[1]))
        dpadded = window_sum_backward(dtotal, self._padded_shape, self.kernel_size, self.stride)
        return unpad_spatial(dpadded, self.padding)


class Subsampling(_Pool2D):
    """LeNet-5's trainable subsampling (S2, S4): out[c] = weight[c] · Σ window + bias[c].

    Each map has one trainable coefficient and one trainable bias (LeCun et al. 1998, §II.B);
    the 2×2 windows do not overlap.

    Args:
        channels: C. kernel_size: window size (2 in the paper). rng: unused, for symmetry.

    Shape:
        (N, C, H, W) -> (N, C, H // 2, W // 2) for 2×2; weight (C,), bias (C,).
    """

    def __init__(self, channels: int, kernel_size=2, weight_init_value: float = 0.25) -> None:
        super().__init__(kernel_size)
        self.channels = positive_int(channels, "channels", "Subsampling")
        # 1/(window size) makes it start as average pooling, a neutral first guess.
        self.weight = Parameter(np.full(self.channels, weight_init_value, np.float32), "weight")
        self.bias = Parameter(np.zeros(self.channels, np.float32), "bias")

    def _forward(self, x):
        check_input(self, x, 4, f"(N, {self.channels}, H, W)", channels=self.channels)
        self._check(x)
        sums = window_sum(x, self.kernel_size, self.stride)
        self._cache = (sums, x.shape)
        weight = self.weight.value.astype(x.dtype, copy=False)[:, None, None, None]
        bias = self.bias.value.astype(x.dtype, copy=False)[:, None, None, None]
        return sums * weight + bias

    def _backward(self, dout):
        sums, input_shape = self._cache
        self.weight.grad += (dout * sums).sum(axis=(1, 2, 3))
        self.bias.grad += dout.sum(axis=(1, 2, 3))
        dsums = dout * self.weight.value.astype(dout.dtype, copy=False)[:, None, None, None]
        return window_sum_backward(dsums, input_shape, self.kernel_size, self.stride)

    def extra_repr(self):
        return f"{self.channels}, kernel_size={self.kernel_size}"
