"""Sliding windows on batch-last (C, H, W, N) arrays, for the fast steps of every windowed layer.

`window_view` is the one strided view they start from. `column_blocks` builds a
convolution's column matrix a cache-sized block at a time; `col2im` adds window gradients
back onto the input, looping only over the kernel's KH·KW offsets, each add running over
long contiguous rows (see `layout.py` for why the batch is the last axis).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..nn.im2col import output_size
from ..nn.pooling import kernel_offsets


def pad_spatial(x: np.ndarray, padding: tuple[int, int], value: float = 0.0) -> np.ndarray:
    """Pad the H and W axes of a (C, H, W, N) array; returns `x` itself when padding is 0."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    channels, height, width, batch = x.shape
    padded = np.full((channels, height + 2 * ph, width + 2 * pw, batch), value, dtype=x.dtype)
    padded[:, ph : ph + height, pw : pw + width, :] = x
    return padded


def unpad_spatial(x: np.ndarray, padding: tuple[int, int]) -> np.ndarray:
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    return x[:, ph : x.shape[1] - ph, pw : x.shape[2] - pw, :]


def window_view(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """Every KH×KW window of a (C, H, W, N) array, as a read-only view.

    Shape: (C, KH, KW, OH, OW, N) with OH = (H − KH) // SH + 1, OW = (W − KW) // SW + 1;
    element [c, i, j, oh, ow, n] is x[c, oh·SH + i, ow·SW + j, n].
    """
    channels, height, width, batch = x.shape
    kh, kw = kernel
    sh, sw = stride
    oh, ow = output_size(height, kh, sh), output_size(width, kw, sw)
    sc, s_h, s_w, sn = x.strides
    return as_strided(
        x,
        shape=(channels, kh, kw, oh, ow, batch),
        strides=(sc, s_h, s_w, s_h * sh, s_w * sw, sn),
        writeable=False,
    )


def column_blocks(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], max_columns: int | None = None):
    """The column matrix of `im2col`, a block of output positions at a time.

    Yields (start, stop, block): `block` is im2col(x)[:, start:stop], shape
    (C·KH·KW, stop − start), at most `max_columns` wide (None: the whole matrix in one
    block). Blocks are copied into one buffer that the next block overwrites; a whole
    matrix is a fresh array the caller may keep. The output positions (OH, OW, N) are
    flattened row-major, so a block is a contiguous range of a convolution's output
    (F, OH·OW·N): whole output rows, or, when one row is wider than `max_columns` and the
    horizontal stride is 1, a run of (OW, N) positions within a row.
    """
    x = np.ascontiguousarray(x)
    channels, height, width, batch = x.shape
    kh, kw = kernel
    sh, sw = stride
    oh, ow = output_size(height, kh, sh), output_size(width, kw, sw)
    depth, row_length = channels * kh * kw, ow * batch
    widest = oh * row_length if max_columns is None else max(1, max_columns)
    if widest >= row_length or sw > 1:
        windows = window_view(x, kernel, stride)
        rows_per_block = min(oh, max(1, widest // row_length))
        buffer = np.empty(depth * rows_per_block * row_length, x.dtype)
        for first in range(0, oh, rows_per_block):
            last = min(oh, first + rows_per_block)
            block = buffer[: depth * (last - first) * row_length].reshape(channels, kh, kw, last - first, ow, batch)
            np.copyto(block, windows[:, :, :, first:last])
            yield first * row_length, last * row_length, block.reshape(depth, -1)
        return
    # With stride 1 along W, position (ow, n) of a window row sits ow·N + n elements after
    # its first one: the (OW, N) axes of a row are one evenly strided axis, cut anywhere.
    # Strides from the shape, not x.strides: NumPy calls an array with a length-1 axis
    # contiguous whatever that axis's stride, and a batch of one would step by it.
    s_w = batch * x.itemsize
    s_h, sc = width * s_w, height * width * s_w
    buffer = np.empty(depth * widest, x.dtype)
    for row in range(oh):
        row_windows = as_strided(
            x[:, row * sh :], shape=(channels, kh, kw, row_length), strides=(sc, s_h, s_w, x.itemsize), writeable=False
        )
        for first in range(0, row_length, widest):
            last = min(row_length, first + widest)
            block = buffer[: depth * (last - first)].reshape(channels, kh, kw, last - first)
            np.copyto(block, row_windows[..., first:last])
            yield row * row_length + first, row * row_length + last, block.reshape(depth, -1)


def col2im(
    columns: np.ndarray,
    input_shape: tuple[int, int, int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
) -> np.ndarray:
    """The adjoint of `im2col`: sum each column entry back onto the input pixel it came from.

    Shape: columns (C·KH·KW, OH·OW·N) -> (C, H, W, N). Overlapping windows add up.
    """
    channels, height, width, batch = input_shape
    kh, kw = kernel
    sh, sw = stride
    oh, ow = output_size(height, kh, sh), output_size(width, kw, sw)
    windows = columns.reshape(channels, kh, kw, oh, ow, batch)
    dx = np.zeros(input_shape, dtype=columns.dtype)
    with np.errstate():  # restores the buffer size on exit
        np.setbufsize(_row_buffer_size(ow * batch if sw == 1 else batch))
        for i in range(kh):
            for j in range(kw):
                dx[:, i : i + sh * oh : sh, j : j + sw * ow : sw, :] += windows[:, i, j]
    return dx


def _row_buffer_size(row_length: int) -> int:
    """The ufunc buffer size for col2im's adds, whose operands are contiguous rows of
    `row_length` elements laid out with different strides in source and destination.

    With NumPy's default buffer (8,192 elements) longer than such a row, NumPy 2.4 copies
    the operands through its buffers; with a buffer no longer than a row it runs the add
    loop on them in place, without the copies. A multiple of 16 elements is what NumPy
    accepts.
    """
    default = np.getbufsize()
    if row_length < 16 or row_length >= default:
        return default
    return row_length // 16 * 16


def input_slice(i, j, stride, out_hw):
    """The input pixels that kernel offset (i, j) reads, for all output positions."""
    (sh, sw), (oh, ow) = stride, out_hw
    return (slice(None), slice(i, i + sh * oh, sh), slice(j, j + sw * ow, sw), slice(None))


def window_sum(padded, kernel, stride):
    """Σ over each KH×KW window of a (C, H, W, N) array -> (C, OH, OW, N)."""
    windows = window_view(padded, kernel, stride)
    total = windows[:, 0, 0].copy()
    for i, j in kernel_offsets(kernel)[1:]:
        total += windows[:, i, j]
    return total


def window_sum_backward(dtotal, padded_shape, kernel, stride):
    """The adjoint of `window_sum`: every pixel of a window receives the window's gradient."""
    dx = np.zeros(padded_shape, dtype=dtotal.dtype)
    out_hw = dtotal.shape[1:3]
    overlapping = stride[0] < kernel[0] or stride[1] < kernel[1]
    for i, j in kernel_offsets(kernel):
        target = dx[input_slice(i, j, stride, out_hw)]
        if overlapping:
            target += dtotal
        else:  # non-overlapping windows write each pixel once: a copy, no read-add
            target[...] = dtotal
    return dx
