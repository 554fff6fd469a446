"""Sigmoid, Tanh and ScaledTanh on the compiled backend: NumPy's own passes, split over the
kernels' threads.

Not compiled: NumPy's tanh is vectorised, and Numba's is a scalar call per value (301,056
values, C1's maps at batch 64: NumPy 0.97 ms on one thread, 0.56 ms on two; Numba 7.1 ms on
one thread, 3.7 ms on two, measured).
"""

from __future__ import annotations

from ..elementwise import ScaledTanhStep, SigmoidStep, TanhStep
from ..threads import in_parts
from .jit import current_threads


def run_on_threads(function, *arrays):
    in_parts(function, arrays, current_threads())


class ThreadedSigmoidStep(SigmoidStep):
    run = staticmethod(run_on_threads)


class ThreadedTanhStep(TanhStep):
    run = staticmethod(run_on_threads)


class ThreadedScaledTanhStep(ScaledTanhStep):
    run = staticmethod(run_on_threads)
