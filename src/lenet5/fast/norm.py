"""BatchNorm1D and BatchNorm2D, fast: batch-last, so a (C, M) reshape gives one row per channel."""

from __future__ import annotations

import numpy as np

from .step import Step, check_input


class BatchNormStep(Step):
    """A `lenet5.nn.BatchNorm1D` or `BatchNorm2D` on (C, H, W, N) or (F, N) arrays."""

    def check(self, x):
        norm = self.layer
        check_input(self, x, norm.ndim, norm.expected.format(norm.num_features), channels=norm.num_features)

    def batch_statistics(self, rows):
        """(mean, 1/σ, centred rows, values per channel) of the training batch, one row per
        channel, with the running statistics updated. Shared with the fused BatchNorm →
        MaxPool step (fusion.py), whose output must equal this step's bit for bit."""
        norm = self.layer
        count = rows.shape[1]
        mean = (rows.sum(axis=1, dtype=np.float64) / count).astype(rows.dtype)
        centred = rows - mean[:, None]
        var = np.einsum("ij,ij->i", centred, centred) / count
        norm.update_running_statistics(mean, var, count)
        return mean, 1.0 / np.sqrt(var + norm.eps), centred, count

    def forward(self, x):
        norm = self.layer
        self.check(x)
        rows = x.reshape(norm.num_features, -1)
        gamma = norm.weight.value.astype(x.dtype, copy=False)[:, None]
        beta = norm.bias.value.astype(x.dtype, copy=False)[:, None]
        if norm.training:
            _, inv_std, normalised, count = self.batch_statistics(rows)
            normalised *= inv_std[:, None]  # centred rows, normalised in place
            self._cache = (True, normalised, inv_std, gamma, count)
            out = normalised * gamma
            out += beta
        else:
            inv_std = (1.0 / np.sqrt(norm.running_var + norm.eps)).astype(x.dtype)
            scale = gamma * inv_std[:, None]
            shift = beta - norm.running_mean.astype(x.dtype)[:, None] * scale
            self._cache = (False, rows, inv_std, gamma, rows.shape[1])
            out = rows * scale
            out += shift
        return out.reshape(x.shape)

    def backward(self, dout):
        norm = self.layer
        training, cached, inv_std, gamma, count = self._cache
        rows = dout.reshape(norm.num_features, -1)
        if not training:  # eval: an affine map per channel, statistics fixed
            normalised = (cached - norm.running_mean.astype(cached.dtype)[:, None]) * inv_std[:, None]
            norm.weight.grad += np.einsum("ij,ij->i", rows, normalised)
            norm.bias.grad += rows.sum(axis=1)
            return (rows * (gamma * inv_std[:, None])).reshape(dout.shape)
        normalised = cached
        dbeta = rows.sum(axis=1)
        dgamma = np.einsum("ij,ij->i", rows, normalised)
        norm.weight.grad += dgamma
        norm.bias.grad += dbeta
        # dx = γ/σ · (dy − mean(dy) − x̂ · mean(dy · x̂)), the batch-mean terms coming from
        # the mean and variance depending on every sample of the channel.
        dx = normalised * (-dgamma / count)[:, None]
        dx += rows
        dx -= (dbeta / count)[:, None]
        dx *= gamma * inv_std[:, None]
        return dx.reshape(dout.shape)
