"""Conv2D, compiled: the seven loops of a convolution over batch-last (C, H, W, N) arrays.

    out[f, oh, ow, n] = bias[f] + Σ_c Σ_i Σ_j weight[f, c, i, j] · x[c, oh·SH + i, ow·SW + j, n]

The batch is the innermost loop: N contiguous values, which LLVM turns into vector
instructions. Each kernel's parallel loop runs over what one thread may own alone: output
maps and rows in the forward pass, (output map, input map) pairs for the weight gradient,
input maps for the input gradient, so every sum runs in one thread in a fixed order.
Unconnected (output, input) map pairs (the C3 table of LeCun et al. 1998) are skipped.

Which path runs a layer is chosen by measurement (benchmarks/bench.py's ladder, on a
2-core machine): these loops beat im2col and BLAS where the column matrix is shallow
(C·KH·KW at most DIRECT_MAX_DEPTH: C1 of every zoo model, whose im2col copy costs more than
its product), and BLAS wins where it is deep; those layers keep the NumPy step's blocked
im2col and matrix products (`lenet5.fast.conv.ConvStep`) for their products, with the
compiled col2im below for the input gradient.
"""

from __future__ import annotations

import numpy as np

from ...nn.im2col import output_size
from ..conv import ConvStep
from ..step import check_input
from ..windows import pad_spatial, unpad_spatial
from .jit import kernel, prange

# The deepest column matrix (C·KH·KW) the direct loops run; deeper layers multiply with BLAS.
DIRECT_MAX_DEPTH = 32


@kernel
def conv_forward(x, weight, bias, connected, stride_h, stride_w, out):
    """x (C, H, W, N) padded, weight (F, C, KH, KW), bias (F,), connected (F, C) bool
    -> out (F, OH, OW, N)."""
    maps, channels, kh, kw = weight.shape
    _, oh_count, ow_count, batch = out.shape
    for task in prange(maps * oh_count):  # one output row of one map per iteration
        f, oh = task // oh_count, task % oh_count
        for ow in range(ow_count):
            total = out[f, oh, ow]
            for n in range(batch):
                total[n] = bias[f]
            for c in range(channels):
                if not connected[f, c]:
                    continue
                for i in range(kh):
                    for j in range(kw):
                        w = weight[f, c, i, j]
                        pixels = x[c, oh * stride_h + i, ow * stride_w + j]
                        for n in range(batch):
                            total[n] += w * pixels[n]


@kernel
def conv_weight_grad(x, dout, connected, stride_h, stride_w, dweight):
    """dweight[f, c, i, j] = Σ_oh Σ_ow Σ_n dout[f, oh, ow, n] · x[c, oh·SH + i, ow·SW + j, n]."""
    maps, channels, kh, kw = dweight.shape
    _, oh_count, ow_count, batch = dout.shape
    for task in prange(maps * channels):
        f, c = task // channels, task % channels
        sums = np.zeros((kh, kw), dtype=dweight.dtype)
        if connected[f, c]:
            for oh in range(oh_count):
                for ow in range(ow_count):
                    grad = dout[f, oh, ow]
                    for i in range(kh):
                        for j in range(kw):
                            pixels = x[c, oh * stride_h + i, ow * stride_w + j]
                            total = sums[i, j]
                            for n in range(batch):
                                total += grad[n] * pixels[n]
                            sums[i, j] = total
        dweight[f, c] = sums


@kernel
def conv_input_grad(dout, weight, connected, stride_h, stride_w, dx):
    """dx[c, oh·SH + i, ow·SW + j, n] += weight[f, c, i, j] · dout[f, oh, ow, n], summed over
    f, oh, ow, i, j; dx (C, H, W, N) padded, overwritten."""
    maps, channels, kh, kw = weight.shape
    _, oh_count, ow_count, batch = dout.shape
    for c in prange(channels):  # each thread owns whole input maps: its adds never collide
        dx[c] = 0
        for f in range(maps):
            if not connected[f, c]:
                continue
            for oh in range(oh_count):
                for ow in range(ow_count):
                    grad = dout[f, oh, ow]
                    for i in range(kh):
                        for j in range(kw):
                            w = weight[f, c, i, j]
                            target = dx[c, oh * stride_h + i, ow * stride_w + j]
                            for n in range(batch):
                                target[n] += w * grad[n]


@kernel
def channel_sums(x, sums):
    """sums[c] = Σ of x[c] (any shape after the channel axis, contiguous), in one thread each."""
    rows = x.reshape(x.shape[0], -1)
    for c in prange(rows.shape[0]):
        total = 0.0  # float64: a bias gradient sums up to 10^6 values
        for k in range(rows.shape[1]):
            total += rows[c, k]
        sums[c] = total


@kernel
def col2im(columns, kh, kw, stride_h, stride_w, dx):
    """The adjoint of im2col: columns (C·KH·KW, OH·OW·N) summed onto dx (C, H, W, N),
    overwritten; one thread per input map."""
    channels, _, _, batch = dx.shape
    oh_count = (dx.shape[1] - kh) // stride_h + 1
    ow_count = (dx.shape[2] - kw) // stride_w + 1
    windows = columns.reshape(channels, kh, kw, oh_count, ow_count, batch)
    for c in prange(channels):
        dx[c] = 0
        for i in range(kh):
            for j in range(kw):
                for oh in range(oh_count):
                    for ow in range(ow_count):
                        source = windows[c, i, j, oh, ow]
                        target = dx[c, oh * stride_h + i, ow * stride_w + j]
                        for n in range(batch):
                            target[n] += source[n]


class CompiledConvStep(ConvStep):
    """A `lenet5.nn.Conv2D` on (C, H, W, N) arrays: the direct loops for shallow layers, the
    NumPy step's BLAS products with a compiled col2im for deep ones (see the module docstring)."""

    def __init__(self, layer) -> None:
        super().__init__(layer, blocked=True)
        depth = layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]
        self.direct = depth <= DIRECT_MAX_DEPTH
        self.connected = (np.ones((layer.out_channels, layer.in_channels), bool) if layer.connections is None
                          else np.ascontiguousarray(layer.connections))

    def forward(self, x):
        if not self.direct:
            return super().forward(x)
        conv = self.layer
        check_input(self, x, 4, f"(N, {conv.in_channels}, H, W)", channels=conv.in_channels)
        padded = np.ascontiguousarray(pad_spatial(x, conv.padding))
        channels, height, width, batch = padded.shape
        kh, kw = conv.kernel_size
        if height < kh or width < kw:
            raise ValueError(
                f"{conv!r}: input of {height - 2 * conv.padding[0]}x{width - 2 * conv.padding[1]} "
                f"pixels (padded {height}x{width}) is smaller than the kernel {conv.kernel_size}"
            )
        weight = np.ascontiguousarray(conv.masked(conv.weight.value), dtype=x.dtype)
        bias = (np.zeros(conv.out_channels, x.dtype) if conv.bias is None
                else np.ascontiguousarray(conv.bias.value, dtype=x.dtype))
        oh, ow = output_size(height, kh, conv.stride[0]), output_size(width, kw, conv.stride[1])
        out = np.empty((conv.out_channels, oh, ow, batch), dtype=x.dtype)
        conv_forward(out.size * channels * kh * kw, padded, weight, bias, self.connected, *conv.stride, out)
        self._cache = (padded, weight)
        return out

    def backward(self, dout):
        if not self.direct:
            return self._gemm_backward(dout)
        dout = self._backward_parameters(dout)
        padded, weight = self._cache
        dpadded = np.empty_like(padded)
        conv_input_grad(dout.size * weight.shape[1] * weight.shape[2] * weight.shape[3], dout, weight,
                        self.connected, *self.layer.stride, dpadded)
        return unpad_spatial(dpadded, self.layer.padding)

    def backward_parameters(self, dout):
        if not self.direct:
            super().backward_parameters(dout)
            return
        self._backward_parameters(dout)

    def _backward_parameters(self, dout):
        if not self.direct:
            return super()._backward_parameters(dout)
        conv = self.layer
        padded, weight = self._cache
        dout = np.ascontiguousarray(dout)
        dweight = np.empty(weight.shape, dtype=dout.dtype)
        conv_weight_grad(dout.size * weight.shape[1] * weight.shape[2] * weight.shape[3], padded, dout,
                         self.connected, *conv.stride, dweight)
        conv.weight.grad += dweight
        if conv.bias is not None:
            dbias = np.empty(conv.out_channels, dtype=dout.dtype)
            channel_sums(dout.size, dout, dbias)
            conv.bias.grad += dbias
        return dout

    def _gemm_backward(self, dout):
        """BLAS for the products (the NumPy step's), the compiled col2im for the scatter."""
        dout_matrix = super()._backward_parameters(dout)
        padded, weight, _, _ = self._cache
        dcolumns = weight.T @ dout_matrix
        dpadded = np.empty(padded.shape, dtype=dcolumns.dtype)
        col2im(dcolumns.size, dcolumns, *self.layer.kernel_size, *self.layer.stride, dpadded)
        return unpad_spatial(dpadded, self.layer.padding)
