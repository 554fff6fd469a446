"""Dense (fully connected) and Flatten."""

from __future__ import annotations

import numpy as np

from .checks import check_input, positive_int
from .init import as_generator, initializer
from .module import Module
from .parameter import Parameter


class Dense(Module):
    """y = W·x + b.

    Args:
        in_features, out_features: sizes of x and y. bias: add a trainable bias.
        weight_init: initializer name or function; rng: a Generator or seed.

    Shape:
        (N, in_features) -> (N, out_features); weight (out_features, in_features) and
        bias (out_features,), as in PyTorch's Linear.
    """

    prefix = "fc"

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 weight_init="he_uniform", rng=None) -> None:
        super().__init__()
        self.in_features = positive_int(in_features, "in_features", "Dense")
        self.out_features = positive_int(out_features, "out_features", "Dense")
        weight = initializer(weight_init, "Dense")(
            (self.out_features, self.in_features), self.in_features, self.out_features, as_generator(rng)
        )
        self.weight = Parameter(weight, "weight")
        self.bias = Parameter(np.zeros(self.out_features, np.float32), "bias") if bias else None

    def output_shape(self, input_shape):
        return (self.out_features,)

    def forward(self, x):
        check_input(self, x, 2, f"(N, {self.in_features})", channels=self.in_features)
        self._x = x
        out = x @ self.weight.value.T.astype(x.dtype, copy=False)
        if self.bias is not None:
            out += self.bias.value.astype(x.dtype, copy=False)
        return out

    def backward(self, dout):
        self.weight.grad += dout.T @ self._x
        if self.bias is not None:
            self.bias.grad += dout.sum(axis=0)
        return dout @ self.weight.value.astype(dout.dtype, copy=False)

    def backward_curvature(self, d2out):
        # ∂²E/∂x_j² = Σ_i W_ij² ∂²E/∂y_i²  and  ∂²E/∂W_ij² = Σ_n ∂²E/∂y_ni² · x_nj².
        self.weight.curvature += d2out.T @ self._x**2
        if self.bias is not None:
            self.bias.curvature += d2out.sum(axis=0)
        return d2out @ self.weight.value.astype(d2out.dtype, copy=False) ** 2

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}" + ("" if self.bias is not None else ", bias=False")


class Flatten(Module):
    """(N, C, H, W) -> (N, C·H·W), in PyTorch's order (channel, then row, then column)."""

    prefix = "flatten"

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, x):
        if x.ndim < 2:
            raise ValueError(f"{self!r}: expected input of shape (N, ...), found {x.shape}")
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        return dout.reshape(self._shape)

    def backward_curvature(self, d2out):
        return d2out.reshape(self._shape)
