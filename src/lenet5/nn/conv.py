"""Conv2D: a 2-d convolution (cross-correlation, as in PyTorch) as one matrix product."""

from __future__ import annotations

import numpy as np

from .checks import check_input, positive_int
from .im2col import col2im, im2col, output_size, pad, pair, unpad
from .init import as_generator, initializer
from .module import Module
from .parameter import Parameter


class Conv2D(Module):
    """out[n, f] = bias[f] + Σ_c weight[f, c] ⋆ x[n, c], over KH×KW windows.

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

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 bias: bool = True, connections=None, weight_init="he_uniform", rng=None) -> None:
        super().__init__()
        name = "Conv2D"
        self.in_channels = positive_int(in_channels, "in_channels", name)
        self.out_channels = positive_int(out_channels, "out_channels", name)
        self.kernel_size = pair(kernel_size, "kernel_size", name)
        self.stride = pair(stride, "stride", name)
        self.padding = pair(padding, "padding", name)
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ValueError(f"{name}: kernel_size and stride must be >= 1 and padding >= 0, found "
                             f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}")
        self.connections = None
        if connections is not None:
            table = np.asarray(connections)
            if table.shape != (self.out_channels, self.in_channels) or not np.isin(table, (0, 1)).all():
                raise ValueError(f"{name}: connections must be a 0/1 table of shape "
                                 f"({self.out_channels}, {self.in_channels}), found shape {table.shape}")
            self.connections = table.astype(bool)
        kh, kw = self.kernel_size
        inputs_seen = self.in_channels if self.connections is None else int(self.connections.sum(axis=1).max())
        weight = initializer(weight_init, name)((self.out_channels, self.in_channels, kh, kw),
                                                inputs_seen * kh * kw, self.out_channels * kh * kw, as_generator(rng))
        self.weight = Parameter(self.masked(weight), "weight")
        self.bias = Parameter(np.zeros(self.out_channels, np.float32), "bias") if bias else None

    def masked(self, weight: np.ndarray) -> np.ndarray:
        """`weight` with the entries outside the connection table zeroed (itself without a table)."""
        return weight if self.connections is None else weight * self.connections[:, :, None, None]

    def num_parameters(self, trainable: bool = True) -> int:
        # Weights outside the connection table stay zero and get zero gradient: not learnt.
        count = super().num_parameters(trainable)
        if trainable and self.connections is not None:
            count -= int((self.connections == 0).sum()) * self.kernel_size[0] * self.kernel_size[1]
        return count

    def output_shape(self, input_shape):
        _, height, width = input_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return (self.out_channels, output_size(height, kh, sh, ph), output_size(width, kw, sw, pw))

    def forward(self, x):
        check_input(self, x, 4, f"(N, {self.in_channels}, H, W)", channels=self.in_channels)
        padded = pad(x, self.padding)
        if padded.shape[2] < self.kernel_size[0] or padded.shape[3] < self.kernel_size[1]:
            raise ValueError(f"{self!r}: input of {x.shape[2]}x{x.shape[3]} pixels (padded "
                             f"{padded.shape[2]}x{padded.shape[3]}) is smaller than the kernel {self.kernel_size}")
        weight = self.masked(self.weight.value).astype(x.dtype, copy=False).reshape(self.out_channels, -1)
        columns = im2col(padded, self.kernel_size, self.stride)    # (C·KH·KW, N·OH·OW)
        out = weight @ columns                                       # (F, N·OH·OW)
        if self.bias is not None:
            out += self.bias.value.astype(x.dtype, copy=False)[:, None]
        batch, _, oh, ow = (x.shape[0],) + self.output_shape(x.shape[1:])
        self._cache = (padded.shape, columns, weight)
        return out.reshape(self.out_channels, batch, oh, ow).transpose(1, 0, 2, 3)

    def backward(self, dout):
        padded_shape, columns, weight = self._cache
        dout_matrix = dout.transpose(1, 0, 2, 3).reshape(self.out_channels, -1)  # (F, N·OH·OW)
        self.weight.grad += self.masked((dout_matrix @ columns.T).reshape(self.weight.shape))
        if self.bias is not None:
            self.bias.grad += dout_matrix.sum(axis=1)
        dcolumns = weight.T @ dout_matrix                            # (C·KH·KW, N·OH·OW)
        return unpad(col2im(dcolumns, padded_shape, self.kernel_size, self.stride), self.padding)

    def backward_curvature(self, d2out):
        # Each (output, input) pair is linked by one weight, and each (output, weight) pair by
        # one input pixel, so the squared Jacobian is weight² for x and column² for the weight.
        padded_shape, columns, weight = self._cache
        d2out_matrix = d2out.transpose(1, 0, 2, 3).reshape(self.out_channels, -1)  # (F, N·OH·OW)
        self.weight.curvature += self.masked((d2out_matrix @ (columns**2).T).reshape(self.weight.shape))
        if self.bias is not None:
            self.bias.curvature += d2out_matrix.sum(axis=1)
        d2columns = (weight**2).T @ d2out_matrix
        return unpad(col2im(d2columns, padded_shape, self.kernel_size, self.stride), self.padding)

    def extra_repr(self):
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")
        if self.bias is None:
            text += ", bias=False"
        if self.connections is not None:
            text += f", connections={int(self.connections.sum())}/{self.connections.size}"
        return text
