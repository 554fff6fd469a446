"""Conv2D, fast: batch-last, the column matrix built and multiplied a cache-sized block at a time.

Blocked matrices are not kept: the backward pass rebuilds the blocks it needs for the
weight gradient, which costs less than reading a stored matrix back from memory. In
training, a matrix whose blocks would be narrow (too many rows) is built whole and kept
for the backward pass instead; in eval mode, with no backward pass to serve, it is
blocked too. `blocked=False` builds every matrix whole (the optimisation ladder's
"batch-last layout" rung).
"""

from __future__ import annotations

import numpy as np

from ..nn.im2col import output_size
from .step import Step, check_input
from .windows import col2im, column_blocks, pad_spatial, unpad_spatial

# A block of the column matrix this size stays in one core's L2 cache while the matrix
# multiply reads it; the whole matrix (20 MB for C1 at batch 256) would not, and the
# product then waits on memory. Chosen by timing candidate sizes on one 2-core machine.
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


class ConvStep(Step):
    """A `lenet5.nn.Conv2D` on (C, H, W, N) arrays: `weight (F, C·KH·KW) @ columns
    (C·KH·KW, OH·OW·N)` is already the next layer's (F, OH, OW, N) input."""

    def __init__(self, layer, blocked: bool = True) -> None:
        super().__init__(layer)
        self.blocked = blocked

    def block_columns(self, itemsize: int) -> int | None:
        """How many columns of the column matrix to build and multiply at a time, for
        elements of `itemsize` bytes (None: the whole matrix, which the training pass keeps
        for the backward pass)."""
        conv = self.layer
        if not self.blocked:
            return None
        depth = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
        widest = BLOCK_BYTES // (depth * itemsize)
        small_product = SMALL_PRODUCT // (conv.out_channels * depth)
        if small_product >= MIN_SMALL_PRODUCT_COLUMNS:
            widest = min(widest, small_product)
        if conv.training and widest < MIN_BLOCK_COLUMNS:
            return None
        return max(1, widest)

    def forward(self, x):
        conv = self.layer
        check_input(self, x, 4, f"(N, {conv.in_channels}, H, W)", channels=conv.in_channels)
        # Contiguous once here, so the blocks of forward and backward are plain strided views.
        padded = np.ascontiguousarray(pad_spatial(x, conv.padding))
        channels, height, width, batch = padded.shape
        if height < conv.kernel_size[0] or width < conv.kernel_size[1]:
            raise ValueError(
                f"{conv!r}: input of {height - 2 * conv.padding[0]}x{width - 2 * conv.padding[1]} "
                f"pixels (padded {height}x{width}) is smaller than the kernel {conv.kernel_size}"
            )
        weight = conv.masked(conv.weight.value).astype(x.dtype, copy=False).reshape(conv.out_channels, -1)
        oh = output_size(height, conv.kernel_size[0], conv.stride[0])
        ow = output_size(width, conv.kernel_size[1], conv.stride[1])
        out = np.empty((conv.out_channels, oh * ow * batch), dtype=x.dtype)
        whole_matrix = None
        block_columns = self.block_columns(x.itemsize)
        for start, stop, block in column_blocks(padded, conv.kernel_size, conv.stride, block_columns):
            np.matmul(weight, block, out=out[:, start:stop])
            if start == 0 and stop == out.shape[1]:
                whole_matrix = block
        if conv.bias is not None:
            out += conv.bias.value.astype(x.dtype, copy=False)[:, None]
        self._cache = (padded, weight, whole_matrix, block_columns)
        return out.reshape(conv.out_channels, oh, ow, batch)

    def backward(self, dout):
        dout_matrix = self._backward_parameters(dout)
        padded, weight, _, _ = self._cache
        dcolumns = weight.T @ dout_matrix
        dpadded = col2im(dcolumns, padded.shape, self.layer.kernel_size, self.layer.stride)
        return unpad_spatial(dpadded, self.layer.padding)

    def backward_parameters(self, dout):
        self._backward_parameters(dout)

    def _backward_parameters(self, dout):
        conv = self.layer
        padded, weight, whole_matrix, block_columns = self._cache
        dout_matrix = np.ascontiguousarray(dout.reshape(conv.out_channels, -1))
        # block @ doutᵀ, not dout @ blockᵀ: BLAS runs the long shared axis faster as the
        # contiguous inner axis of both operands.
        if whole_matrix is not None:
            dweight = whole_matrix @ dout_matrix.T
        else:
            dweight = np.zeros(weight.shape[::-1], dtype=dout.dtype)
            # The forward pass's blocks again, whatever the mode is now.
            for start, stop, block in column_blocks(padded, conv.kernel_size, conv.stride, block_columns):
                dweight += block @ dout_matrix[:, start:stop].T
        conv.weight.grad += conv.masked(dweight.T.reshape(conv.weight.shape))
        if conv.bias is not None:
            conv.bias.grad += dout_matrix.sum(axis=1)
        return dout_matrix
