"""Element-wise activations and Softmax. Each keeps what its derivative needs, no more."""

from __future__ import annotations

import numpy as np

from .module import Module


class ReLU(Module):
    """max(x, 0). Shape: any -> same. The gradient at exactly 0 is taken as 0."""

    prefix = "relu"

    def forward(self, x):
        out = np.maximum(x, 0)
        self._positive = out > 0
        return out

    def backward(self, dout):
        return dout * self._positive


class Sigmoid(Module):
    """1 / (1 + e^−x), computed as (1 + tanh(x/2)) / 2 so no exp can overflow for any x.

    Shape: any -> same. Derivative: σ(x)·(1 − σ(x)).
    """

    prefix = "sigmoid"

    def forward(self, x):
        self._out = (1 + np.tanh(x * 0.5)) * 0.5
        return self._out

    def backward(self, dout):
        return dout * self._out * (1 - self._out)


class Tanh(Module):
    """tanh(x). Shape: any -> same. Derivative: 1 − tanh²(x)."""

    prefix = "tanh"

    def forward(self, x):
        self._out = np.tanh(x)
        return self._out

    def backward(self, dout):
        return dout * (1 - self._out**2)


class ScaledTanh(Module):
    """LeCun's squashing function A·tanh(S·x), A = 1.7159, S = 2/3 (1998, appendix A).

    A and S make f(±1) = ±1, so unit-variance inputs stay near unit variance.
    Shape: any -> same. Derivative: A·S·(1 − tanh²(S·x)).
    """

    prefix = "tanh"
    amplitude = 1.7159
    slope = 2.0 / 3.0

    def forward(self, x):
        self._tanh = np.tanh(x * self.slope)
        return self._tanh * self.amplitude

    def backward(self, dout):
        return dout * (self.amplitude * self.slope) * (1 - self._tanh**2)

    def backward_curvature(self, d2out):
        """f′(a)²·d2out: the Gauss–Newton rule drops the f″(a)·∂E/∂f term."""
        return d2out * ((self.amplitude * self.slope) * (1 - self._tanh**2)) ** 2


def softmax(x: np.ndarray, axis: int = 1) -> np.ndarray:
    """exp(x_k − max x) / Σ_j exp(x_j − max x) along `axis`: the largest exponent is 0, so
    nothing overflows. The one softmax of both engines, their models' probabilities and the
    layer below."""
    exps = np.exp(x - x.max(axis=axis, keepdims=True))
    return exps / exps.sum(axis=axis, keepdims=True)


class Softmax(Module):
    """exp(x_k − max x) / Σ_j exp(x_j − max x) over the feature axis.

    Shape: (N, K) -> (N, K). For training use `SoftmaxCrossEntropy` on logits instead: it is
    fused, stable and cheaper than Softmax followed by a log.
    """

    prefix = "softmax"

    def forward(self, x):
        self._out = softmax(x, axis=1)
        return self._out

    def backward(self, dout):
        out = self._out
        return out * (dout - (dout * out).sum(axis=1, keepdims=True))
