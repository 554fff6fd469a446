"""Activations and Softmax, fast: in place where the reference allocates three arrays, and
ReLU as it is."""

from __future__ import annotations

import numpy as np

from ..nn.activations import softmax
from .step import Step


class ElementwiseStep(Step):
    """A layer that acts element by element is the same in any layout: its own passes run."""

    def forward(self, x):
        return self.layer.forward(x)

    def backward(self, dout):
        return self.layer.backward(dout)


class ReLUStep(ElementwiseStep):
    """ReLU as the reference computes it (a class of its own, so fusion.py can find it)."""


class SigmoidStep(Step):
    """σ(x) = (1 + tanh(x/2)) / 2, as the reference computes it, in one array updated in place."""

    def forward(self, x):
        out = np.multiply(x, 0.5)
        np.tanh(out, out=out)
        out += 1
        out *= 0.5
        self._out = out
        return out

    def backward(self, dout):
        # One new array, updated in place: `dout * out * (1 - out)` would allocate three.
        out = self._out
        dx = np.subtract(1, out)
        dx *= out
        dx *= dout
        return dx


class TanhStep(Step):
    def forward(self, x):
        self._out = np.tanh(x)
        return self._out

    def backward(self, dout):
        dx = np.square(self._out)
        np.subtract(1, dx, out=dx)
        dx *= dout
        return dx


class ScaledTanhStep(Step):
    def forward(self, x):
        layer = self.layer
        self._tanh = np.tanh(x * layer.slope)
        return self._tanh * layer.amplitude

    def backward(self, dout):
        layer = self.layer
        dx = np.square(self._tanh)
        np.subtract(1, dx, out=dx)
        dx *= dout
        dx *= layer.amplitude * layer.slope
        return dx


class SoftmaxStep(Step):
    """Softmax over the feature axis, which is axis 0 batch-last."""

    def forward(self, x):
        self._out = softmax(x, axis=0)
        return self._out

    def backward(self, dout):
        out = self._out
        return out * (dout - (dout * out).sum(axis=0, keepdims=True))
