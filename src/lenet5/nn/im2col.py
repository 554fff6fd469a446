"""Sliding windows on NCHW arrays, shared by Conv2D and the pooling layers.

`im2col` turns every KH×KW window of a batch into one column of a matrix, so that a
convolution becomes one matrix product; `col2im` is its adjoint, adding each column entry
back onto the pixel it came from. Both loop over the KH·KW kernel offsets only: each offset
is one strided slice covering every sample, channel and output position at once.
"""

from __future__ import annotations

import numpy as np


def pair(value, name: str, layer: str) -> tuple[int, int]:
    """An int or a pair of ints as (height, width); used by every windowed layer's constructor."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    ):
        return int(value[0]), int(value[1])
    raise ValueError(f"{layer}: {name} must be an int or a pair of ints, found {value!r}")


def output_size(size: int, kernel: int, stride: int, padding: int = 0) -> int:
    """floor((size + 2·padding − kernel) / stride) + 1, the formula of every windowed layer."""
    return (size + 2 * padding - kernel) // stride + 1


def pad(x: np.ndarray, padding: tuple[int, int], value: float = 0.0) -> np.ndarray:
    """Pad the H and W axes of an (N, C, H, W) array; `x` itself when padding is 0."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def unpad(x: np.ndarray, padding: tuple[int, int]) -> np.ndarray:
    ph, pw = padding
    return x[:, :, ph : x.shape[2] - ph, pw : x.shape[3] - pw]


def window_slice(i: int, j: int, stride: tuple[int, int], out_hw: tuple[int, int]):
    """The input pixels that kernel offset (i, j) reads, for every output position."""
    (sh, sw), (oh, ow) = stride, out_hw
    return (slice(None), slice(None), slice(i, i + sh * oh, sh), slice(j, j + sw * ow, sw))


def im2col(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """The column matrix of an (N, C, H, W) array (already padded).

    Shape: (C·KH·KW, N·OH·OW). Row (c, i, j) follows a PyTorch weight's (C, KH, KW) axes,
    so `weight.reshape(F, -1) @ im2col(x)` is the convolution; column (n, oh, ow) is
    window (oh, ow) of sample n.
    """
    batch, channels, height, width = x.shape
    (kh, kw), (sh, sw) = kernel, stride
    oh, ow = output_size(height, kh, sh), output_size(width, kw, sw)
    columns = np.empty((channels, kh, kw, batch, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            # x[n, c, i + SH·oh, j + SW·ow] for every n, c, oh, ow, moved to (c, n, oh, ow).
            columns[:, i, j] = x[window_slice(i, j, stride, (oh, ow))].transpose(1, 0, 2, 3)
    return columns.reshape(channels * kh * kw, batch * oh * ow)


def col2im(columns: np.ndarray, input_shape: tuple[int, int, int, int],
           kernel: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """The adjoint of `im2col`: (C·KH·KW, N·OH·OW) -> (N, C, H, W); overlapping windows add up."""
    batch, channels, height, width = input_shape
    (kh, kw), (sh, sw) = kernel, stride
    oh, ow = output_size(height, kh, sh), output_size(width, kw, sw)
    windows = columns.reshape(channels, kh, kw, batch, oh, ow)
    dx = np.zeros(input_shape, dtype=columns.dtype)
    for i in range(kh):
        for j in range(kw):
            dx[window_slice(i, j, stride, (oh, ow))] += windows[:, i, j].transpose(1, 0, 2, 3)
    return dx
