"""Sigmoid, Tanh and ScaledTanh on the compiled backend: one compiled pass each way, split over
the kernels' threads.

Why not NumPy's tanh: it costs 2.5-3 ns a float32 value here, and Numba's (a scalar library
call per value) 24 ns. A rational function x·P(x²)/Q(x²) is only multiplies, adds and one
divide, so its loop vectorises: `tanh_float32` below. float64 arrays (the tests' 1e-10
checks) keep NumPy's exact tanh forward; the backward passes are the same formulas as the
reference's in either dtype.
"""

from __future__ import annotations

import numpy as np

from ..elementwise import ScaledTanhStep, SigmoidStep, TanhStep
from ..threads import in_parts
from .jit import current_threads, inline, serial_kernel

# tanh(x) ≈ x·P(x²)/Q(x²) on |x| ≤ CLAMP, and tanh(±CLAMP) beyond, where tanh is 1 to within
# 3e-7. The coefficients were fitted here (scripts/fit_tanh.py: least squares on the relative
# error, reweighted towards its maximum): 1.5e-9 relative in exact arithmetic, at most 5
# float32 ulps as evaluated in float32 (tests/fast/test_compiled.py measures it).
CLAMP = np.float32(7.9)
P0, P1, P2, P3 = (np.float32(c) for c in (0.9999999984652723, 0.13128123010313278, 0.003153638080477293,
                                          1.1689420310734201e-05))
P4, P5, P6 = (np.float32(c) for c in (-2.2525053333016984e-08, 6.482612397604902e-11, -1.1923844826728567e-13))
Q1, Q2, Q3 = (np.float32(c) for c in (0.46461454746018654, 0.024691848281181206, 0.0002619317523652152))
ONE, HALF = np.float32(1), np.float32(0.5)


@inline
def tanh_float32(x):
    """tanh(x) for a float32 x, to within 5 ulps (the rational function above)."""
    # Two selects, each false for a NaN, so a NaN input stays NaN (a diverging model shows it).
    x = CLAMP if x > CLAMP else x
    x = -CLAMP if x < -CLAMP else x
    s = x * x
    p = P0 + s * (P1 + s * (P2 + s * (P3 + s * (P4 + s * (P5 + s * P6)))))
    q = ONE + s * (Q1 + s * (Q2 + s * Q3))
    return x * p / q


@serial_kernel
def tanh_forward(x, out):
    for i in range(x.shape[0]):
        out[i] = tanh_float32(x[i])


@serial_kernel
def sigmoid_forward(x, out):
    """σ(x) = (1 + tanh(x/2)) / 2, as the reference computes it."""
    for i in range(x.shape[0]):
        out[i] = HALF + HALF * tanh_float32(HALF * x[i])


@serial_kernel
def scaled_tanh_forward(x, slope, amplitude, tanh, out):
    """tanh = tanh(slope·x), kept for the backward pass; out = amplitude·tanh."""
    for i in range(x.shape[0]):
        value = tanh_float32(slope * x[i])
        tanh[i] = value
        out[i] = amplitude * value


@serial_kernel
def tanh_backward(tanh, dout, factor, dx):
    """dx = dout·factor·(1 − tanh²): Tanh's (factor 1) and ScaledTanh's (factor A·S) backward."""
    for i in range(dx.shape[0]):
        dx[i] = dout[i] * factor * (1 - tanh[i] * tanh[i])


@serial_kernel
def sigmoid_backward(out, dout, dx):
    """dx = dout·σ·(1 − σ)."""
    for i in range(dx.shape[0]):
        dx[i] = dout[i] * out[i] * (1 - out[i])


def _flat(array):
    return np.ascontiguousarray(array).reshape(-1)


# Below this many values a pass runs whole on the calling thread: handing half of it to another
# thread costs about 40 µs (measured), what these kernels take for about 100,000 values.
SPLIT_FROM = 200_000


def _on_threads(function, *arrays):
    in_parts(function, arrays, SPLIT_FROM, current_threads)


class CompiledForward:
    """The forward pass of a step whose output alone its backward pass needs (`_out`): its
    `kernel` for float32, the NumPy step's own passes for float64."""

    kernel = None

    def forward(self, x):
        if x.dtype != np.float32:
            return super().forward(x)
        out = self._out = self._new(x)
        _on_threads(type(self).kernel, _flat(x), out.reshape(-1))
        return out


class CompiledTanhStep(CompiledForward, TanhStep):
    kernel = tanh_forward

    def backward(self, dout):
        dx = self._new(dout)
        _on_threads(lambda tanh, dout, dx: tanh_backward(tanh, dout, tanh.dtype.type(1), dx),
                    self._out.reshape(-1), _flat(dout), dx.reshape(-1))
        return dx


class CompiledSigmoidStep(CompiledForward, SigmoidStep):
    kernel = sigmoid_forward

    def backward(self, dout):
        dx = self._new(dout)
        _on_threads(sigmoid_backward, self._out.reshape(-1), _flat(dout), dx.reshape(-1))
        return dx


class CompiledScaledTanhStep(ScaledTanhStep):
    def forward(self, x):
        if x.dtype != np.float32:
            return super().forward(x)
        layer, real = self.layer, x.dtype.type
        self._tanh, out = self._new(x), self._new(x)
        _on_threads(lambda x, tanh, out: scaled_tanh_forward(x, real(layer.slope), real(layer.amplitude), tanh, out),
                    _flat(x), self._tanh.reshape(-1), out.reshape(-1))
        return out

    def backward(self, dout):
        factor = dout.dtype.type(self.layer.amplitude * self.layer.slope)
        dx = self._new(dout)
        _on_threads(lambda tanh, dout, dx: tanh_backward(tanh, dout, factor, dx),
                    self._tanh.reshape(-1), _flat(dout), dx.reshape(-1))
        return dx
