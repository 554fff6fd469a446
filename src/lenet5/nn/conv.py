"""Conv2D: a 2-d convolution (cross-correlation, as in PyTorch) by im2col and matrix products.

The column matrix is built and multiplied a cache-sized block at a time (`column_blocks`).
Blocked matrices are not kept: the backward pass rebuilds the blocks it needs for the
weight gradient, which costs less than reading a stored matrix back from memory. In
training, a matrix whose blocks would be narrow (too many rows) is built whole and kept
for the backward pass instead; in eval mode, with no backward pass to serve, it is
blocked too.
"""

from __future__ import annotations

import numpy as np

from .checks import check_input, positive_int
from .im2col import col2im, column_blocks, output_size, pad_spatial, pair, unpad_spatial
from .init import as_generator, initializer
from .module import Module
from .parameter import Parameter

# A block of the column matrix this size stays in one core's L2 cache while the matrix
# multiply reads it; the whole matrix (20 MB for C1 at batch 256) would not, and the
# product then waits on memory. Chosen by timing candidate sizes on this machine.
BLOCK_BYTES = 256 * 1024
# Blocks narrower than this make the training pass slower than one whole matrix kept for
# the backward pass (C3's 150 rows leave 436 columns in 256 KiB): the weight gradient's
# many narrow products then cost more than reading the stored matrix back.
MIN_BLOCK_COLUMNS = 1024
# OpenBLAS multiplies products of at most this many multiply-adds (M·N·K) with a kernel
# that packs nothing; for a block fresh in cache from its copy that runs about twice as
# fast as a product just over the limit (measured: C3's (16, 150) @ (150, 416) against
# (150, 420)). Blocks are cut under it where that leaves them at least
# MIN_SMALL_PRODUCT_COLUMNS wide; narrower, the calls would cost more than they save.
SMALL_PRODUCT = 1_000_000
MIN_SMALL_PRODUCT_COLUMNS = 256


class Conv2D(Module):
    """out[f] = bias[f] + Σ_c weight[f, c] ⋆ x[c], over KH×KW windows.

    Args:
        in_channels, out_channels: C and F.
        kernel_size, stride, padding: an int or an (height, width) pair; zero padding.
        bias: add a trainable bias per output map.
        connections: optional (F, C) 0/1 table; output map f sees input map c only where
            connections[f, c] is 1 (the C3 layer of LeCun et al. 1998). Weights outside the
            table stay zero and receive zero gradient.
        weight_init: initializer name or function; rng: a Generator or seed.

    Shape:
        input (N, C, H, W) -> output (N, F, OH, OW), with
        OH = floor((H + 2·PH − KH) / SH) + 1 and OW = floor((W + 2·PW − KW) / SW) + 1.
        weight (F, C, KH, KW), bias (F,), as in PyTorch.
    """

    prefix = "conv"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        bias: bool = True,
        connections=None,
        weight_init="he_uniform",
        rng=None,
    ) -> None:
        super().__init__()
        name = "Conv2D"
        self.in_channels = positive_int(in_channels, "in_channels", name)
        self.out_channels = positive_int(out_channels, "out_channels", name)
        self.kernel_size = pair(kernel_size, "kernel_size", name)
        self.stride = pair(stride, "stride", name)
        self.padding = pair(padding, "padding", name)
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ValueError(
                f"{name}: kernel_size and stride must be >= 1 and padding >= 0, found "
                f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
            )
        self.connections = None
        if connections is not None:
            table = np.asarray(connections)
            if table.shape != (self.out_channels, self.in_channels) or not np.isin(table, (0, 1)).all():
                raise ValueError(
                    f"{name}: connections must be a 0/1 table of shape "
                    f"({self.out_channels}, {self.in_channels}), found shape {table.shape}"
                )
            self.connections = table.astype(bool)
        kh, kw = self.kernel_size
        connected_inputs = (
            self.connections.sum(axis=1).max() if self.connections is not None else self.in_channels
        )
        fan_in, fan_out = int(connected_inputs) * kh * kw, self.out_channels * kh * kw
        generator = as_generator(rng)
        weight = initializer(weight_init, name)(
            (self.out_channels, self.in_channels, kh, kw), fan_in, fan_out, generator
        )
        if self.connections is not None:
            weight = weight * self.connections[:, :, None, None]
        self.weight = Parameter(weight, "weight")
        self.bias = Parameter(np.zeros(self.out_channels, np.float32), "bias") if bias else None

    def output_shape(self, input_shape):
        _, height, width = input_shape
        return (
            self.out_channels,
            output_size(height, self.kernel_size[0], self.stride[0], self.padding[0]),
            output_size(width, self.kernel_size[1], self.stride[1], self.padding[1]),
        )

    def _weight_matrix(self) -> np.ndarray:
        weight = self.weight.value
        if self.connections is not None:
            weight = weight * self.connections[:, :, None, None]
        return weight.reshape(self.out_channels, -1)

    def _block_columns(self, itemsize: int) -> int | None:
        """How many columns of the column matrix to build and multiply at a time, for
        elements of `itemsize` bytes (None: the whole matrix, which the training pass keeps
        for the backward pass)."""
        depth = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        widest = BLOCK_BYTES // (depth * itemsize)
        small_product = SMALL_PRODUCT // (self.out_channels * depth)
        if small_product >= MIN_SMALL_PRODUCT_COLUMNS:
            widest = min(widest, small_product)
        if self.training and widest < MIN_BLOCK_COLUMNS:
            return None
        return max(1, widest)

    def _forward(self, x):
        check_input(self, x, 4, f"(N, {self.in_channels}, H, W)", channels=self.in_channels)
        # Contiguous once here, so the blocks of forward and backward are plain strided views.
        padded = np.ascontiguousarray(pad_spatial(x, self.padding))
        channels, height, width, batch = padded.shape
        if height < self.kernel_size[0] or width < self.kernel_size[1]:
            raise ValueError(
                f"{self!r}: input of {height - 2 * self.padding[0]}x{width - 2 * self.padding[1]} "
                f"pixels (padded {height}x{width}) is smaller than the kernel {self.kernel_size}"
            )
        weight = self._weight_matrix().astype(x.dtype, copy=False)
        oh = output_size(height, self.kernel_size[0], self.stride[0])
        ow = output_size(width, self.kernel_size[1], self.stride[1])
        out = np.empty((self.out_channels, oh * ow * batch), dtype=x.dtype)
        whole_matrix = None
        block_columns = self._block_columns(x.itemsize)
        for start, stop, block in column_blocks(padded, self.kernel_size, self.stride, block_columns):
            np.matmul(weight, block, out=out[:, start:stop])
            if start == 0 and stop == out.shape[1]:
                whole_matrix = block
        if self.bias is not None:
            out += self.bias.value.astype(x.dtype, copy=False)[:, None]
        self._cache = (padded, weight, whole_matrix, block_columns)
        return out.reshape(self.out_channels, oh, ow, batch)

    def _backward(self, dout):
        dout_matrix = self._backward_parameters(dout)
        padded, weight, _, _ = self._cache
        dcolumns = weight.T @ dout_matrix
        dpadded = col2im(dcolumns, padded.shape, self.kernel_size, self.stride)
        return unpad_spatial(dpadded, self.padding)

    def _backward_parameters(self, dout):
        """Fill the weight and bias gradients only (the first layer needs no input gradient)."""
        padded, weight, whole_matrix, block_columns = self._cache
        dout_matrix = np.ascontiguousarray(dout.reshape(self.out_channels, -1))
        # block @ doutᵀ, not dout @ blockᵀ: BLAS runs the long shared axis faster as the
        # contiguous inner axis of both operands.
        if whole_matrix is not None:
            dweight = whole_matrix @ dout_matrix.T
        else:
            dweight = np.zeros(weight.shape[::-1], dtype=dout.dtype)
            # The forward pass's blocks again, whatever the mode is now.
            for start, stop, block in column_blocks(padded, self.kernel_size, self.stride, block_columns):
                dweight += block @ dout_matrix[:, start:stop].T
        dweight = dweight.T.reshape(self.weight.shape)
        if self.connections is not None:
            dweight = dweight * self.connections[:, :, None, None]
        self.weight.grad += dweight
        if self.bias is not None:
            self.bias.grad += dout_matrix.sum(axis=1)
        return dout_matrix

    def extra_repr(self):
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}"
        )
        if self.bias is None:
            text += ", bias=False"
        if self.connections is not None:
            text += f", connections={int(self.connections.sum())}/{self.connections.size}"
        return text
