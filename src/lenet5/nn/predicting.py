"""What every model that gives logits also gives: classes, probabilities, accuracy, and the
eval mode they run in (the reference Sequential and the fast engine's wrappers share it)."""

from __future__ import annotations

import contextlib

import numpy as np

from .activations import softmax


@contextlib.contextmanager
def evaluating(model):
    """Run the block with every module of `model` in eval mode, then put each module's own
    mode back, so training may go on right after a prediction."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode


class Predicting:
    """`predict`, `predict_proba` and `accuracy`, from a class's `predict_logits(x, batch_size)`."""

    def predict_logits(self, x, batch_size: int = 64) -> np.ndarray:
        raise NotImplementedError

    def predict(self, x, batch_size: int = 64) -> np.ndarray:
        """The most probable class of each sample, (N,) int64."""
        return self.predict_logits(x, batch_size).argmax(axis=1).astype(np.int64)

    def predict_proba(self, x, batch_size: int = 64) -> np.ndarray:
        """Class probabilities (N, K): the softmax of the logits."""
        return softmax(self.predict_logits(x, batch_size), axis=1)

    def accuracy(self, x, labels, batch_size: int = 64) -> float:
        """The fraction of samples whose predicted class equals the label (one-hot accepted)."""
        labels = np.asarray(labels)
        if labels.ndim == 2:
            labels = labels.argmax(axis=1)
        return float((self.predict(x, batch_size) == labels).mean())
