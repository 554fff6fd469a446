"""The fast engine: the reference layers of `lenet5.nn`, run faster, and tested against them.

    FastModel(model)   batch-last layout, compiled kernels on threads (or the NumPy steps),
                       fused BatchNorm → max-pool → ReLU, folded inference plan

The program (model.py: the step list, fusion.py, plan.py) knows no kernels; a backend
(backends.py) says which step runs each layer: the NumPy steps below, or the compiled ones
in compiled/. The calls an engine answers are written down in protocol.py.

Where each speed-up lives:
    layout.py      why the batch is the last axis inside, and the conversions
    windows.py     strided windows, the column matrix in cache-sized blocks, col2im
    conv.py        ConvStep: blocked convolution (the tuning constants and why)
    pooling.py     MaxPoolStep, AvgPoolStep, SubsamplingStep
    norm.py        BatchNormStep
    dense.py, elementwise.py, dropout.py: the other layers' steps
    fusion.py      NormPoolReLU: BatchNorm2D → MaxPool2D → ReLU as one training step
    plan.py        the inference plan: BatchNorm folded, Dropout gone, ReLU after pooling
    model.py       FastModel: the steps of a model, sharing its parameters
    flat.py        FlatOptimizer: every parameter in one flat buffer, an optimiser step in a few calls
    threads.py     BLAS threads (threadpoolctl)
    compiled/      the compiled backend: Numba kernels, threaded, results independent of
                   the thread count

The reference engine never imports this package.
"""

from .backends import BackendUnavailable
from .flat import FlatOptimizer
from .model import FastModel
from .protocol import Engine, Transform

__all__ = ["BackendUnavailable", "Engine", "FastModel", "FlatOptimizer", "Transform"]
