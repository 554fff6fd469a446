"""Losses on logits: softmax cross-entropy, and the MAP and MLE criteria of LeNet-5 (1998)."""

from __future__ import annotations

import numpy as np


class Loss:
    """What every loss shares: `loss(logits, labels)` keeps the gradient of the last call for
    `backward()`, the layer-like way to call them; `value_and_grad` gives both at once."""

    grad: np.ndarray | None = None

    def __call__(self, logits, labels) -> float:
        loss, self.grad = self.value_and_grad(logits, labels)
        return loss

    forward = __call__

    def backward(self) -> np.ndarray:
        if self.grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before the loss was computed")
        return self.grad


class SoftmaxCrossEntropy(Loss):
    """L = −mean_n log softmax(z_n)[y_n], with its gradient (softmax(z) − onehot(y)) / N.

    The log-softmax is z − max z − log Σ exp(z − max z) (log-sum-exp), so logits of ±1e4
    give a finite loss and gradient. Value and gradient come from the same log-softmax.

    Labels are integer classes (N,) or rows of class probabilities (N, K), e.g. one-hot.

    Shape: logits (N, K), labels (N,) or (N, K) -> a float; `grad` (N, K).
    """

    @staticmethod
    def value_and_grad(logits, labels) -> tuple[float, np.ndarray]:
        logits, targets = _logits_and_targets(logits, labels, "SoftmaxCrossEntropy")
        count = len(logits)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_sum = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        log_probs = shifted - log_sum
        loss = -float((targets * log_probs).sum()) / count
        # The gradient of −Σ t·log softmax(z) is softmax(z)·Σt − t; it is softmax − t only for
        # rows that sum to 1, which (N, K) soft targets need not.
        grad = (np.exp(log_probs) * targets.sum(axis=1, keepdims=True) - targets) / count
        return loss, grad.astype(logits.dtype, copy=False)


class MAPLoss(Loss):
    """LeCun et al.'s (1998, §III-B) MAP criterion on RBF logits z = −y (y: the penalties).

    E = 1/N Σ_n [ y_{D_n} + log(e^{−j} + Σ_i e^{−y_i}) ] = 1/N Σ_n [ −z_D + log(e^{−j} + Σ_i e^{z_i}) ].

    The first term pulls the correct class's penalty down; the second pushes every penalty
    up, like a softmax over the classes plus one "rubbish" class whose logit is fixed at −j.
    Its gradient is p − onehot(D) with p_i = e^{z_i} / (e^{−j} + Σ_k e^{z_k}), so a wrong
    class is pushed only while its penalty is within a few units of j.

    Why j = 0.1: the paper names j but gives no value. With j = 0.1 a wrong class's push,
    at most e^{j − y_i}, is under 1% once its penalty exceeds 4.7, so classes are separated
    by a few units of penalty and no more, while the distance between two ±1 RBF centres is
    4 per differing pixel (dozens of pixels in the 7×12 bitmaps). It is also the value
    public reimplementations use, so their loss curves compare with ours (E's floor, reached
    when y_D = 0 and every other penalty is large, is log(1 + e^{−j}) ≈ 0.64, not 0).

    The log is taken as m + log(e^{−j−m} + Σ e^{z−m}), m = max(z, −j), so penalties of 1e4
    give a finite loss and gradient.

    Labels are integer classes (N,) or rows of class weights (N, K) (one-hot gives the
    paper's E); rows t generalise it to −t·z + (Σt)·log(e^{−j} + Σ e^z).

    Shape: logits (N, K), labels (N,) or (N, K) -> a float; `grad` (N, K).
    """

    def __init__(self, j: float = 0.1) -> None:
        if not (isinstance(j, (int, float)) and np.isfinite(j)):
            raise ValueError(f"MAPLoss: j must be a finite number, found {j!r}")
        self.j = float(j)

    def value_and_grad(self, logits, labels) -> tuple[float, np.ndarray]:
        logits, targets = _logits_and_targets(logits, labels, "MAPLoss")
        log_total, probs = self._competition(logits)
        weights = targets.sum(axis=1, keepdims=True)
        loss = float((weights * log_total).sum() - (targets * logits).sum()) / len(logits)
        grad = (probs * weights - targets) / len(logits)
        return loss, grad.astype(logits.dtype, copy=False)

    def curvature(self, logits, labels) -> np.ndarray:
        """∂²E_n/∂z_i² for each pattern's own E_n (not divided by N), for SDLM.

        This is the exact diagonal of the Hessian of E_n w.r.t. the logits, p_i·(1 − p_i)
        (times Σt for weighted rows). log(e^{−j} + Σ e^z) is convex, so it is ≥ 0; the
        off-diagonal terms −p_i·p_k are what the paper's diagonal approximation drops.
        From random weights every penalty is far above j, so p ≈ 0 and so is this curvature
        (LeNet-5 1998 at its initial weights gets h below 1e-39): SDLM's first steps are
        lr/μ, bounded by μ alone.

        Shape: logits (N, K), labels (N,) or (N, K) -> (N, K).
        """
        logits, targets = _logits_and_targets(logits, labels, "MAPLoss")
        _, probs = self._competition(logits)
        return (probs * (1 - probs) * targets.sum(axis=1, keepdims=True)).astype(logits.dtype, copy=False)

    def _competition(self, logits):
        """log(e^{−j} + Σ_i e^{z_i}) per row (N, 1), and p_i = e^{z_i} / that sum (N, K)."""
        peak = np.maximum(logits.max(axis=1, keepdims=True), -self.j)
        exps = np.exp(logits - peak)
        log_sum = np.log(np.exp(-self.j - peak) + exps.sum(axis=1, keepdims=True))
        return peak + log_sum, np.exp(logits - peak - log_sum)

    def __repr__(self) -> str:
        return f"MAPLoss(j={self.j})"


class MLELoss(Loss):
    """LeCun et al.'s (1998, §III-B) maximum-likelihood criterion on RBF logits z = −y.

    E = 1/N Σ_n y_{D_n} = −1/N Σ_n z_{n,D_n}: the penalty of the correct class alone, the first
    term of `MAPLoss`. Its gradient is −onehot(D)/N: F6 is pulled toward its digit's code and
    never pushed from the others'. The paper warns that with trainable RBF centres E has a
    trivial minimum, every centre and F6's output collapsed to one point, which fixed distinct
    codes (`RBF(trainable=False)`) rule out; and that the classes do not compete, which is
    what the MAP criterion's second term adds.

    Labels are integer classes (N,) or rows of class weights (N, K) (one-hot gives the
    paper's E); rows t generalise it to −t·z.

    Shape: logits (N, K), labels (N,) or (N, K) -> a float; `grad` (N, K).
    """

    @staticmethod
    def value_and_grad(logits, labels) -> tuple[float, np.ndarray]:
        logits, targets = _logits_and_targets(logits, labels, "MLELoss")
        loss = -float((targets * logits).sum()) / len(logits)
        return loss, (-targets / len(logits)).astype(logits.dtype, copy=False)

    @staticmethod
    def curvature(logits, labels) -> np.ndarray:
        """∂²E_n/∂z_i² for each pattern's own E_n, for SDLM: zero, exactly.

        E is linear in the logits, so chaining its Hessian through the network
        (`estimate_curvature`) gives h = 0 everywhere and every SDLM step is the ceiling lr/μ.
        MLE's curvature lives one layer down: y_D = Σ_j (x_j − c_Dj)² is a sum of squares of
        F6's outputs x, whose second derivative is 2 for every x_j (exact, the residuals being
        linear in x). `lenet5.zoo.lecun1998.PenaltyGaussNewton` adds that 2 at the RBF's
        inputs; with this zero as the competition term, 2 is MLE's whole output curvature.

        Shape: logits (N, K), labels (N,) or (N, K) -> (N, K).
        """
        logits, _ = _logits_and_targets(logits, labels, "MLELoss")
        return np.zeros_like(logits)

    def __repr__(self) -> str:
        return "MLELoss()"


def _logits_and_targets(logits, labels, loss: str) -> tuple[np.ndarray, np.ndarray]:
    """Logits as a float (N, K) array and labels as (N, K) target rows of their dtype."""
    logits = np.asarray(logits)
    if logits.dtype not in (np.float32, np.float64):
        logits = logits.astype(np.float32)
    if logits.ndim != 2:
        raise ValueError(f"{loss}: expected logits of shape (N, K), found {logits.shape}")
    count, classes = logits.shape
    return logits, _target_rows(np.asarray(labels), count, classes, logits.dtype, loss)


def _target_rows(labels: np.ndarray, count: int, classes: int, dtype, loss: str) -> np.ndarray:
    if labels.ndim == 1:
        if labels.shape[0] != count:
            raise ValueError(f"{loss}: {count} logit rows but {labels.shape[0]} labels")
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"{loss}: integer labels expected, found dtype {labels.dtype}")
        if count and (labels.min() < 0 or labels.max() >= classes):
            raise ValueError(
                f"{loss}: labels must be in [0, {classes - 1}], found {labels.min()}..{labels.max()}"
            )
        targets = np.zeros((count, classes), dtype=dtype)
        targets[np.arange(count), labels] = 1
        return targets
    if labels.shape != (count, classes):
        raise ValueError(
            f"{loss}: labels must be shape ({count},) or ({count}, {classes}), found {labels.shape}"
        )
    return labels.astype(dtype, copy=False)
