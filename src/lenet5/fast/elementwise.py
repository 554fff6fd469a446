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


class PassesStep(Step):
    """A step whose passes are NumPy functions over flat arrays, `function(*arrays)` writing its
    result into the last; `run` calls them, and a backend may split them over its threads
    (`compiled.elementwise`)."""

    @staticmethod
    def run(function, *arrays):
        function(*arrays)

    def _new(self, like):
        return np.empty(like.shape, like.dtype)


def _flat(array):
    return np.ascontiguousarray(array).reshape(-1)


class SigmoidStep(PassesStep):
    """σ(x) = (1 + tanh(x/2)) / 2, as the reference computes it, in one array updated in place."""

    def forward(self, x):
        out = self._out = self._new(x)
        self.run(sigmoid, _flat(x), out.reshape(-1))
        return out

    def backward(self, dout):
        dx = self._new(dout)
        self.run(sigmoid_grad, self._out.reshape(-1), _flat(dout), dx.reshape(-1))
        return dx


def sigmoid(x, out):
    np.multiply(x, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1
    out *= 0.5


def sigmoid_grad(out, dout, dx):
    # In place in dx: `dout * out * (1 - out)` would allocate three arrays.
    np.subtract(1, out, out=dx)
    dx *= out
    dx *= dout


class TanhStep(PassesStep):
    def forward(self, x):
        out = self._out = self._new(x)
        self.run(np.tanh, _flat(x), out.reshape(-1))
        return out

    def backward(self, dout):
        dx = self._new(dout)
        self.run(tanh_grad, self._out.reshape(-1), _flat(dout), dx.reshape(-1))
        return dx


def tanh_grad(tanh, dout, dx, factor=None):
    np.square(tanh, out=dx)
    np.subtract(1, dx, out=dx)
    dx *= dout
    if factor is not None:
        dx *= factor


class ScaledTanhStep(PassesStep):
    def forward(self, x):
        layer = self.layer
        self._tanh, out = self._new(x), self._new(x)
        self.run(lambda x, tanh, out: scaled_tanh(x, layer.slope, layer.amplitude, tanh, out),
                 _flat(x), self._tanh.reshape(-1), out.reshape(-1))
        return out

    def backward(self, dout):
        layer = self.layer
        dx = self._new(dout)
        self.run(lambda tanh, dout, dx: tanh_grad(tanh, dout, dx, layer.amplitude * layer.slope),
                 self._tanh.reshape(-1), _flat(dout), dx.reshape(-1))
        return dx


def scaled_tanh(x, slope, amplitude, tanh, out):
    np.multiply(x, slope, out=tanh)
    np.tanh(tanh, out=tanh)
    np.multiply(tanh, amplitude, out=out)


class SoftmaxStep(Step):
    """Softmax over the feature axis, which is axis 0 batch-last."""

    def forward(self, x):
        self._out = softmax(x, axis=0)
        return self._out

    def backward(self, dout):
        out = self._out
        return out * (dout - (dout * out).sum(axis=0, keepdims=True))
