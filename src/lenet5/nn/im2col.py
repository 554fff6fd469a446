"""Sliding windows on batch-last arrays, shared by Conv2D and the pooling layers.

`window_view` is the one strided view every windowed layer starts from; `im2col` copies it
into the column matrix a convolution multiplies; `col2im` adds window gradients back onto
the input, looping only over the kernel's KH·KW offsets (never over samples or pixels).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided


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


def im2col(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """The column matrix of a (C, H, W, N) array: (C·KH·KW, OH·OW·N), one copy.

    Row index is (c, i, j) in the order of a PyTorch weight's (C, KH, KW) axes, so
    `weight.reshape(F, -1) @ im2col(x)` is the convolution.
    """
    windows = window_view(x, kernel, stride)
    channels, kh, kw, oh, ow, batch = windows.shape
    return windows.reshape(channels * kh * kw, oh * ow * batch)


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
    for i in range(kh):
        for j in range(kw):
            dx[:, i : i + sh * oh : sh, j : j + sw * ow : sw, :] += windows[:, i, j]
    return dx
