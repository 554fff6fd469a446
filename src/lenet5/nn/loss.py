"""Softmax and cross-entropy fused into one stable loss on logits."""

from __future__ import annotations

import numpy as np


class SoftmaxCrossEntropy:
    """L = −mean_n log softmax(z_n)[y_n], with its gradient (softmax(z) − onehot(y)) / N.

    The log-softmax is z − max z − log Σ exp(z − max z) (log-sum-exp), so logits of ±1e4
    give a finite loss and gradient. Value and gradient come from the same log-softmax.

    Labels are integer classes (N,) or rows of class probabilities (N, K), e.g. one-hot.

    Shape: logits (N, K), labels (N,) or (N, K) -> a float; `grad` (N, K).
    """

    def __init__(self) -> None:
        self.grad: np.ndarray | None = None

    def __call__(self, logits, labels) -> float:
        loss, self.grad = self.value_and_grad(logits, labels)
        return loss

    forward = __call__

    def backward(self) -> np.ndarray:
        if self.grad is None:
            raise RuntimeError("SoftmaxCrossEntropy.backward called before the loss was computed")
        return self.grad

    @staticmethod
    def value_and_grad(logits, labels) -> tuple[float, np.ndarray]:
        logits = np.asarray(logits)
        if logits.dtype not in (np.float32, np.float64):
            logits = logits.astype(np.float32)
        if logits.ndim != 2:
            raise ValueError(f"SoftmaxCrossEntropy: expected logits of shape (N, K), found {logits.shape}")
        count, classes = logits.shape
        targets = _target_rows(np.asarray(labels), count, classes, logits.dtype)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_sum = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        log_probs = shifted - log_sum
        loss = -float((targets * log_probs).sum()) / count
        # The gradient of −Σ t·log softmax(z) is softmax(z)·Σt − t; it is softmax − t only for
        # rows that sum to 1, which (N, K) soft targets need not.
        grad = (np.exp(log_probs) * targets.sum(axis=1, keepdims=True) - targets) / count
        return loss, grad.astype(logits.dtype, copy=False)


def _target_rows(labels: np.ndarray, count: int, classes: int, dtype) -> np.ndarray:
    if labels.ndim == 1:
        if labels.shape[0] != count:
            raise ValueError(f"SoftmaxCrossEntropy: {count} logit rows but {labels.shape[0]} labels")
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"SoftmaxCrossEntropy: integer labels expected, found dtype {labels.dtype}")
        if count and (labels.min() < 0 or labels.max() >= classes):
            raise ValueError(
                f"SoftmaxCrossEntropy: labels must be in [0, {classes - 1}], found {labels.min()}..{labels.max()}"
            )
        targets = np.zeros((count, classes), dtype=dtype)
        targets[np.arange(count), labels] = 1
        return targets
    if labels.shape != (count, classes):
        raise ValueError(
            f"SoftmaxCrossEntropy: labels must be shape ({count},) or ({count}, {classes}), found {labels.shape}"
        )
    return labels.astype(dtype, copy=False)
