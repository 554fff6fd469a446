"""Batch normalisation (Ioffe & Szegedy 2015), per channel, with PyTorch's conventions."""

from __future__ import annotations

import numpy as np

from .checks import check_input, positive_int
from .conv import Conv2D
from .dense import Dense
from .module import Module
from .parameter import Parameter


def fold_into_linear(weight, bias, gamma, beta, mean, var, eps):
    """The weight and bias of a convolution or dense layer (output units along axis 0 of
    `weight`) followed by an eval-mode BatchNorm, as one layer: BN(Wx + b) = (s·W)x +
    (b − mean)·s + beta with s = gamma/√(var + eps). Computed in the arrays' own dtype.
    """
    scale = gamma / np.sqrt(var + eps)
    return weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1)), (bias - mean) * scale + beta


def folds_into(layer, norm) -> bool:
    """Whether an eval-mode `norm` right after `layer` (Dropout between them is the identity)
    folds into it with `fold_into_linear`: a BatchNorm2D after a Conv2D, or a BatchNorm1D after
    a Dense, with one statistic per output unit. The one rule of the fast engine's inference
    plan and of the ONNX export."""
    if isinstance(norm, BatchNorm2D):
        return isinstance(layer, Conv2D) and layer.out_channels == norm.num_features
    return isinstance(norm, BatchNorm1D) and isinstance(layer, Dense) and layer.out_features == norm.num_features


class _BatchNorm(Module):
    """Shared by BatchNorm1D and BatchNorm2D: one mean and variance per feature/channel
    (axis 1), over every other axis.

    Training uses the batch's mean and biased variance and updates the running statistics
    as running = (1 − momentum)·running + momentum·batch, with the unbiased variance
    (PyTorch's convention). Evaluation uses the running statistics.
    """

    prefix = "bn"
    buffer_names = ("running_mean", "running_var")
    ndim = 0
    expected = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        name = type(self).__name__
        self.num_features = positive_int(num_features, "num_features", name)
        if not eps > 0:
            raise ValueError(f"{name}: eps must be > 0, found {eps!r}")
        if not 0 <= momentum <= 1:
            raise ValueError(f"{name}: momentum must be in [0, 1], found {momentum!r}")
        self.eps, self.momentum = float(eps), float(momentum)
        self.weight = Parameter(np.ones(num_features, np.float32), "weight")
        self.bias = Parameter(np.zeros(num_features, np.float32), "bias")
        self.running_mean = np.zeros(num_features, np.float32)
        self.running_var = np.ones(num_features, np.float32)

    def check(self, x):
        check_input(self, x, self.ndim, self.expected.format(self.num_features), channels=self.num_features)

    def per_channel(self, vector, dtype):
        """A (C,) vector shaped to broadcast along axis 1 of the input: (1, C) or (1, C, 1, 1)."""
        return np.asarray(vector, dtype).reshape((1, -1) + (1,) * (self.ndim - 2))

    def update_running_statistics(self, mean, var, count):
        if count < 2:
            raise ValueError(f"{self!r}: training needs more than one value per channel, found {count}")
        m = self.momentum
        self.running_mean = ((1 - m) * self.running_mean + m * mean).astype(self.running_mean.dtype)
        unbiased = var * (count / (count - 1))
        self.running_var = ((1 - m) * self.running_var + m * unbiased).astype(self.running_var.dtype)

    def forward(self, x):
        self.check(x)
        axes = (0,) + tuple(range(2, x.ndim))  # every axis but the channel's
        if self.training:
            mean, var = x.mean(axis=axes), x.var(axis=axes)
            self.update_running_statistics(mean, var, x.size // self.num_features)
        else:
            mean, var = self.running_mean, self.running_var
        inv_std = 1.0 / np.sqrt(var.astype(x.dtype) + self.eps)
        normalised = (x - self.per_channel(mean, x.dtype)) * self.per_channel(inv_std, x.dtype)
        self._cache = (normalised, inv_std, self.training)
        return normalised * self.per_channel(self.weight.value, x.dtype) + self.per_channel(self.bias.value, x.dtype)

    def backward(self, dout):
        normalised, inv_std, training = self._cache
        axes = (0,) + tuple(range(2, dout.ndim))
        dbeta = dout.sum(axis=axes)
        dgamma = (dout * normalised).sum(axis=axes)
        self.weight.grad += dgamma
        self.bias.grad += dbeta
        scale = self.per_channel(self.weight.value * inv_std, dout.dtype)  # γ/σ
        if not training:  # eval: an affine map per channel, statistics fixed
            return dout * scale
        # dx = γ/σ · (dy − mean(dy) − x̂ · mean(dy · x̂)): the mean terms come from every
        # sample of a channel entering its mean and variance.
        count = dout.size // self.num_features
        return scale * (dout - self.per_channel(dbeta / count, dout.dtype)
                        - normalised * self.per_channel(dgamma / count, dout.dtype))

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm2D(_BatchNorm):
    """Batch normalisation of conv maps: one mean and variance per channel over (N, H, W).

    Args:
        num_features: C. eps: added to the variance (1e-5). momentum: weight of the new
            batch in the running statistics (0.1).

    Shape:
        (N, C, H, W) -> (N, C, H, W); weight, bias, running_mean, running_var (C,).
    """

    ndim = 4
    expected = "(N, {}, H, W)"


class BatchNorm1D(_BatchNorm):
    """Batch normalisation of features: one mean and variance per feature over the batch.

    Args:
        num_features: F. eps, momentum: as for BatchNorm2D.

    Shape:
        (N, F) -> (N, F); weight, bias, running_mean, running_var (F,).
    """

    ndim = 2
    expected = "(N, {})"
