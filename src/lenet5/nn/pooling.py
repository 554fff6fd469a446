"""Pooling: MaxPool2D, AvgPool2D and the trainable Subsampling layer of LeNet-5 (1998).

All three loop over the KH×KW kernel offsets only (`im2col.window_slice`): each offset is
one strided slice of the input covering every sample, channel and output position at once.
"""

from __future__ import annotations

import numpy as np

from .checks import check_input, positive_int
from .im2col import output_size, pad, pair, unpad, window_slice
from .module import Module
from .parameter import Parameter


def kernel_offsets(kernel):
    """(i, j) for every position of a KH×KW window, in row-major order."""
    return [(i, j) for i in range(kernel[0]) for j in range(kernel[1])]


def window_sum(x, kernel, stride):
    """Σ over each KH×KW window of an (N, C, H, W) array -> (N, C, OH, OW)."""
    out_hw = (output_size(x.shape[2], kernel[0], stride[0]), output_size(x.shape[3], kernel[1], stride[1]))
    return sum(x[window_slice(i, j, stride, out_hw)] for i, j in kernel_offsets(kernel))


def window_sum_backward(dtotal, input_shape, kernel, stride):
    """The adjoint of `window_sum`: every pixel of a window receives the window's gradient."""
    dx = np.zeros(input_shape, dtype=dtotal.dtype)
    for i, j in kernel_offsets(kernel):
        dx[window_slice(i, j, stride, dtotal.shape[2:])] += dtotal
    return dx


class _Pool2D(Module):
    """What the pooling layers share: window size, stride, padding and the output shape."""

    prefix = "pool"

    def __init__(self, kernel_size, stride=None, padding=0) -> None:
        super().__init__()
        name = type(self).__name__
        self.kernel_size = pair(kernel_size, "kernel_size", name)
        self.stride = self.kernel_size if stride is None else pair(stride, "stride", name)
        self.padding = pair(padding, "padding", name)
        if min(self.kernel_size) < 1 or min(self.stride) < 1:
            raise ValueError(f"{name}: kernel_size and stride must be >= 1, found "
                             f"kernel_size={self.kernel_size}, stride={self.stride}")
        if not all(0 <= p <= k // 2 for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{name}: padding must be between 0 and half the kernel size, found "
                             f"padding={self.padding} for kernel_size={self.kernel_size}")

    def output_shape(self, input_shape):
        channels, height, width = input_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return (channels, output_size(height, kh, sh, ph), output_size(width, kw, sw, pw))

    def check(self, x, channels=None):
        check_input(self, x, 4, "(N, C, H, W)" if channels is None else f"(N, {channels}, H, W)", channels)
        if min(self.output_shape(x.shape[1:])[1:]) < 1:
            raise ValueError(f"{self!r}: input of {x.shape[2]}x{x.shape[3]} pixels is smaller "
                             f"than the window {self.kernel_size}")

    def extra_repr(self):
        text = f"kernel_size={self.kernel_size}, stride={self.stride}"
        return text + (f", padding={self.padding}" if any(self.padding) else "")


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

    def forward(self, x):
        self.check(x)
        padded = pad(x, self.padding, -np.inf)
        out_hw = self.output_shape(x.shape[1:])[1:]
        windows = [padded[window_slice(i, j, self.stride, out_hw)] for i, j in kernel_offsets(self.kernel_size)]
        out = np.maximum.reduce(windows)
        # hits[k]: offset k holds its window's first maximum; a later tie never takes it.
        hits, unclaimed = [], np.ones(out.shape, dtype=bool)
        for window in windows:
            hit = (window == out) & unclaimed
            unclaimed &= ~hit
            hits.append(hit)
        self._cache = (padded.shape, hits)
        return out

    def backward(self, dout):
        padded_shape, hits = self._cache
        dpadded = np.zeros(padded_shape, dtype=dout.dtype)
        for hit, (i, j) in zip(hits, kernel_offsets(self.kernel_size)):
            dpadded[window_slice(i, j, self.stride, dout.shape[2:])] += dout * hit
        return unpad(dpadded, self.padding)


class AvgPool2D(_Pool2D):
    """The mean of each KH×KW window (padding counts as zeros, PyTorch's default).

    Args:
        kernel_size, stride (default kernel_size), padding: as for MaxPool2D.

    Shape:
        (N, C, H, W) -> (N, C, OH, OW), OH = floor((H + 2·PH − KH) / SH) + 1, likewise OW.
    """

    def forward(self, x):
        self.check(x)
        padded = pad(x, self.padding)
        self._padded_shape = padded.shape
        return window_sum(padded, self.kernel_size, self.stride) * (1.0 / (self.kernel_size[0] * self.kernel_size[1]))

    def backward(self, dout):
        dtotal = dout * (1.0 / (self.kernel_size[0] * self.kernel_size[1]))
        return unpad(window_sum_backward(dtotal, self._padded_shape, self.kernel_size, self.stride), self.padding)


class Subsampling(_Pool2D):
    """LeNet-5's trainable subsampling (S2, S4): out[n, c] = weight[c] · Σ window + bias[c].

    Each map has one trainable coefficient and one trainable bias (LeCun et al. 1998, §II.B);
    the 2×2 windows do not overlap.

    Args:
        channels: C. kernel_size: window size (2 in the paper).
        weight_init_value: the coefficients' first value; 1/(window size) starts the layer
            as average pooling, a neutral first guess.

    Shape:
        (N, C, H, W) -> (N, C, H // 2, W // 2) for 2×2; weight (C,), bias (C,).
    """

    def __init__(self, channels: int, kernel_size=2, weight_init_value: float = 0.25) -> None:
        super().__init__(kernel_size)
        self.channels = positive_int(channels, "channels", "Subsampling")
        self.weight = Parameter(np.full(self.channels, weight_init_value, np.float32), "weight")
        self.bias = Parameter(np.zeros(self.channels, np.float32), "bias")

    def forward(self, x):
        self.check(x, self.channels)
        sums = window_sum(x, self.kernel_size, self.stride)
        self._cache = (sums, x.shape)
        per_channel = (None, slice(None), None, None)
        return sums * self.weight.value.astype(x.dtype)[per_channel] + self.bias.value.astype(x.dtype)[per_channel]

    def backward(self, dout):
        sums, input_shape = self._cache
        self.weight.grad += (dout * sums).sum(axis=(0, 2, 3))
        self.bias.grad += dout.sum(axis=(0, 2, 3))
        dsums = dout * self.weight.value.astype(dout.dtype)[None, :, None, None]
        return window_sum_backward(dsums, input_shape, self.kernel_size, self.stride)

    def backward_curvature(self, d2out):
        # ∂out/∂x = weight[c] for every pixel of the window, ∂out/∂weight[c] = the window's sum.
        sums, input_shape = self._cache
        self.weight.curvature += (d2out * sums**2).sum(axis=(0, 2, 3))
        self.bias.curvature += d2out.sum(axis=(0, 2, 3))
        d2sums = d2out * (self.weight.value.astype(d2out.dtype) ** 2)[None, :, None, None]
        return window_sum_backward(d2sums, input_shape, self.kernel_size, self.stride)

    def extra_repr(self):
        return f"{self.channels}, kernel_size={self.kernel_size}"
