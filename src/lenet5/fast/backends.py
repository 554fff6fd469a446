"""Backends: which step runs each reference layer. The program (`model.FastModel`) asks a
backend for the steps of a model; the backend owns the kernels those steps run.

    numpy      the NumPy steps of this package: batch-last, blocked im2col and BLAS
    compiled   Numba kernels (`compiled/`), threaded, over the same layout; the default
               where Numba is installed (the `fast` extra)

A backend is a table from exact reference-layer types to step classes, plus the class
that runs a training-mode BatchNorm2D → MaxPool2D (→ ReLU) as one step and, optionally, the
classes that run parts of an inference plan (Conv2D → pooling) as one step each. A layer missing
from the table runs through its own forward and backward (`step.ReferenceStep`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from ..nn import (
    AvgPool2D, BatchNorm1D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, ScaledTanh, Sigmoid,
    Softmax, Subsampling, Tanh
)
from .conv import ConvStep
from .dense import DenseStep, FlattenStep
from .dropout import DropoutStep
from .elementwise import ReLUStep, ScaledTanhStep, SigmoidStep, SoftmaxStep, TanhStep
from .fusion import NormPoolReLU
from .norm import BatchNormStep
from .pooling import AvgPoolStep, MaxPoolStep, SubsamplingStep

BACKENDS = ("auto", "compiled", "numpy")


@dataclass(frozen=True)
class Backend:
    name: str
    # Exact types: a subclass of a reference layer may change what it computes, so it runs
    # through its own forward and backward.
    steps: dict = field(repr=False)
    norm_pool_relu: type = field(repr=False)
    inference_fusions: tuple = field(default=(), repr=False)
    threaded: bool = False  # whether its kernels run on threads (`FastModel(threads=...)`)


NUMPY = Backend(
    "numpy",
    {
        Conv2D: ConvStep, MaxPool2D: MaxPoolStep, AvgPool2D: AvgPoolStep, Subsampling: SubsamplingStep,
        BatchNorm1D: BatchNormStep, BatchNorm2D: BatchNormStep, Dense: DenseStep, Flatten: FlattenStep,
        ReLU: ReLUStep, Sigmoid: SigmoidStep, Tanh: TanhStep, ScaledTanh: ScaledTanhStep, Softmax: SoftmaxStep,
        Dropout: DropoutStep,
    },
    NormPoolReLU,
)


@functools.lru_cache(maxsize=None)
def _compiled() -> Backend:
    from . import compiled

    replaced, norm_pool_relu, inference_fusions = compiled.steps()
    return Backend("compiled", {**NUMPY.steps, **replaced}, norm_pool_relu, inference_fusions, threaded=True)


class BackendUnavailable(ImportError):
    """The compiled backend was asked for where Numba is not installed."""


def get_backend(name: str = "auto") -> Backend:
    """The backend called `name`: "numpy", "compiled" (BackendUnavailable without Numba) or
    "auto" (compiled where Numba is installed, else numpy)."""
    if isinstance(name, Backend):
        return name
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: expected one of {', '.join(BACKENDS)}")
    if name == "numpy":
        return NUMPY
    from . import compiled

    if compiled.available():
        return _compiled()
    if name == "compiled":
        raise BackendUnavailable("the compiled backend needs Numba and SciPy: pip install 'lenet5[fast]'")
    return NUMPY
