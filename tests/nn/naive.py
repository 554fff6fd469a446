"""Loop implementations of convolution and pooling: slow, obviously right, the fast code's oracle.

Every function here works batch-first (N, C, H, W), loops over samples, maps and output
positions, and touches one window at a time, so there is nothing clever to get wrong.
"""

from __future__ import annotations

import numpy as np


def _pad(x, padding, value):
    ph, pw = padding
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _unpad(x, padding):
    ph, pw = padding
    return x[:, :, ph : x.shape[2] - ph, pw : x.shape[3] - pw]


def _out_size(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


def _positions(x_shape, kernel, stride, padding):
    """(oh, ow, rows, cols) for every output position, rows/cols slicing the padded input."""
    _, _, height, width = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    for oh in range(_out_size(height, kh, sh, ph)):
        for ow in range(_out_size(width, kw, sw, pw)):
            yield oh, ow, slice(oh * sh, oh * sh + kh), slice(ow * sw, ow * sw + kw)


def conv2d(x, weight, bias, stride, padding):
    """out[n, f, oh, ow] = bias[f] + Σ weight[f] ⊙ (the window of x at (oh, ow))."""
    n_samples, _, height, width = x.shape
    filters, _, kh, kw = weight.shape
    padded = _pad(x, padding, 0.0)
    out = np.zeros((n_samples, filters, _out_size(height, kh, stride[0], padding[0]),
                    _out_size(width, kw, stride[1], padding[1])))
    for n in range(n_samples):
        for f in range(filters):
            for oh, ow, rows, cols in _positions(x.shape, (kh, kw), stride, padding):
                out[n, f, oh, ow] = np.sum(padded[n, :, rows, cols] * weight[f])
                if bias is not None:
                    out[n, f, oh, ow] += bias[f]
    return out


def conv2d_backward(x, weight, stride, padding, dout):
    """(dx, dweight, dbias) of `conv2d`, each output position adding its share."""
    _, _, kh, kw = weight.shape
    padded = _pad(x, padding, 0.0)
    dpadded = np.zeros_like(padded)
    dweight = np.zeros_like(weight)
    for n in range(x.shape[0]):
        for f in range(weight.shape[0]):
            for oh, ow, rows, cols in _positions(x.shape, (kh, kw), stride, padding):
                dweight[f] += dout[n, f, oh, ow] * padded[n, :, rows, cols]
                dpadded[n, :, rows, cols] += dout[n, f, oh, ow] * weight[f]
    return _unpad(dpadded, padding), dweight, dout.sum(axis=(0, 2, 3))


def pool2d(x, kernel, stride, padding, mode):
    """Max (−∞ padding) or average (zero padding, divided by the full window) of each window."""
    n_samples, channels, height, width = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    padded = _pad(x, padding, -np.inf if mode == "max" else 0.0)
    out = np.zeros((n_samples, channels, _out_size(height, kh, sh, ph), _out_size(width, kw, sw, pw)))
    for n in range(n_samples):
        for c in range(channels):
            for oh, ow, rows, cols in _positions(x.shape, kernel, stride, padding):
                window = padded[n, c, rows, cols]
                out[n, c, oh, ow] = window.max() if mode == "max" else window.sum() / (kh * kw)
    return out


def pool2d_backward(x, kernel, stride, padding, mode, dout):
    """dx of `pool2d`. Max: each window's gradient goes to its first maximal element in
    row-major window order (np.argmax returns the first occurrence)."""
    kh, kw = kernel
    padded = _pad(x, padding, -np.inf if mode == "max" else 0.0)
    dpadded = np.zeros(padded.shape)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for oh, ow, rows, cols in _positions(x.shape, kernel, stride, padding):
                if mode == "max":
                    i, j = divmod(int(np.argmax(padded[n, c, rows, cols])), kw)
                    dpadded[n, c, rows.start + i, cols.start + j] += dout[n, c, oh, ow]
                else:
                    dpadded[n, c, rows, cols] += dout[n, c, oh, ow] / (kh * kw)
    return _unpad(dpadded, padding)
