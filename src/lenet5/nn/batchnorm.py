"""Batch normalisation (Ioffe & Szegedy 2015), per channel, with PyTorch's conventions."""

from __future__ import annotations

import numpy as np

from . import parallel
from .checks import check_input, positive_int
from .layout import public_shape
from .module import Module
from .parameter import Parameter


class _BatchNorm(Module):
    """Shared by BatchNorm1D and BatchNorm2D: the statistics run over every axis but the
    feature/channel axis, which the batch-last layout puts first, so a (C, M) reshape
    gives one row per channel.

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

    def _check_input(self, x):
        check_input(self, x, self.ndim, self.expected.format(self.num_features), channels=self.num_features)

    def _forward(self, x):
        self._check_input(x)
        rows = x.reshape(self.num_features, -1)
        gamma = self.weight.value.astype(x.dtype, copy=False)[:, None]
        beta = self.bias.value.astype(x.dtype, copy=False)[:, None]
        if self.training:
            _, inv_std, normalised, count = self._batch_statistics(rows, x.shape)
            normalised *= inv_std[:, None]  # centred rows, normalised in place
            self._cache = (normalised, inv_std, gamma, count)
            out = normalised * gamma
            out += beta
        else:
            inv_std = (1.0 / np.sqrt(self.running_var + self.eps)).astype(x.dtype)
            scale = gamma * inv_std[:, None]
            shift = beta - self.running_mean.astype(x.dtype)[:, None] * scale
            self._cache = (rows, inv_std, gamma, rows.shape[1])
            out = rows * scale
            out += shift
        self._cached_training = self.training
        return out.reshape(x.shape)

    def _batch_statistics(self, rows, input_shape):
        """The training batch's (mean, 1/σ, centred rows, values per channel), one row per
        channel, and the running statistics updated with them. Shared with the fused
        BatchNorm → MaxPool step (fusion.py), whose output must equal this layer's bit for
        bit. In a data-parallel pass the sums run over every process's share (parallel.py)."""
        count = rows.shape[1]
        if parallel.active():
            sums = parallel.all_sum(np.append(rows.sum(axis=1, dtype=np.float64), count))
            count, mean = int(sums[-1]), (sums[:-1] / sums[-1]).astype(rows.dtype)
        else:
            mean = rows.mean(axis=1)
        if count < 2:
            raise ValueError(
                f"{self!r}: training needs more than one value per channel, found input {public_shape(input_shape)}"
            )
        centred = rows - mean[:, None]
        var = parallel.all_sum(np.einsum("ij,ij->i", centred, centred)) / count
        inv_std = 1.0 / np.sqrt(var + self.eps)
        m = self.momentum
        self.running_mean = ((1 - m) * self.running_mean + m * mean).astype(self.running_mean.dtype)
        unbiased = var * (count / (count - 1))
        self.running_var = ((1 - m) * self.running_var + m * unbiased).astype(self.running_var.dtype)
        return mean, inv_std, centred, count

    def _backward(self, dout):
        cached, inv_std, gamma, count = self._cache
        rows = dout.reshape(self.num_features, -1)
        if not self._cached_training:  # eval: an affine map per channel, statistics fixed
            normalised = (cached - self.running_mean.astype(cached.dtype)[:, None]) * inv_std[:, None]
            self.weight.grad += np.einsum("ij,ij->i", rows, normalised)
            self.bias.grad += rows.sum(axis=1)
            return (rows * (gamma * inv_std[:, None])).reshape(dout.shape)
        normalised = cached
        dbeta = rows.sum(axis=1)
        dgamma = np.einsum("ij,ij->i", rows, normalised)
        self.weight.grad += dgamma
        self.bias.grad += dbeta
        # dx = γ/σ · (dy − mean(dy) − x̂ · mean(dy · x̂)), the batch-mean terms coming from
        # the mean and variance depending on every sample of the channel (of every share).
        dbeta, dgamma = parallel.all_sum(np.stack([dbeta, dgamma]))
        dx = normalised * (-dgamma / count)[:, None]
        dx += rows
        dx -= (dbeta / count)[:, None]
        dx *= gamma * inv_std[:, None]
        return dx.reshape(dout.shape)

    def output_shape(self, input_shape):
        return tuple(input_shape)

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
