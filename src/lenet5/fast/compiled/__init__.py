"""The compiled CPU backend: Numba kernels over the batch-last layout, threaded inside each kernel.

    conv.py       Conv2D: the seven loops of a convolution (5-wide and shallow layers), chunks of the
                  column matrix and BLAS inside the kernels, and col2im (deep ones)
    pooling.py    MaxPool2D, AvgPool2D, Subsampling
    fusion.py     BatchNorm2D → MaxPool2D → ReLU as one kernel each way; Conv2D → MaxPool2D
                  → ReLU and Conv2D → squashing → averaging pool as one kernel each for predictions
    elementwise.py  Sigmoid, Tanh, ScaledTanh: a rational tanh whose loop vectorises
    optim.py      Adam's and SDLM's update rules as one loop each (`FlatOptimizer(compiled=True)`)
    jit.py        how kernels are compiled and cached, and why results do not depend on
                  the thread count

Dense layers, BatchNorm1D, Dropout and ReLU keep the NumPy steps: BLAS and one
NumPy pass each already run them near the memory's speed (benchmarks/bench.py).
"""

from __future__ import annotations


def available() -> bool:
    """Whether Numba and SciPy are installed (the `fast` extra): Numba's np.dot, which the
    deep convolutions' kernels call, is SciPy's BLAS."""
    try:
        import numba  # noqa: F401
        import scipy.linalg.cython_blas  # noqa: F401
    except ImportError:
        return False
    return True


def steps():
    """(the steps this backend replaces, by exact reference-layer type; its fused BatchNorm2D
    → MaxPool2D → ReLU training step; its fused Conv2D → pooling prediction steps); the rest of
    `lenet5.fast.backends.NUMPY`'s table stays. Needs Numba."""
    import scipy.linalg.cython_blas  # noqa: F401  (loaded now, so that the thread limits below see it)

    from ...nn import AvgPool2D, Conv2D, MaxPool2D, ScaledTanh, Sigmoid, Subsampling, Tanh
    from ..threads import rescan_libraries
    from .conv import CompiledConvStep
    from .elementwise import CompiledScaledTanhStep, CompiledSigmoidStep, CompiledTanhStep
    from .fusion import CompiledConvPoolReLU, CompiledConvSquashPool, CompiledNormPoolReLU
    from .pooling import CompiledAvgPoolStep, CompiledMaxPoolStep, CompiledSubsamplingStep

    # SciPy's BLAS is a library of its own beside NumPy's; left at its default thread count,
    # each kernel thread's product would start more threads (measured: C3's weight gradient
    # 2.2 times as slow on two threads as on one).
    rescan_libraries()
    replaced = {Conv2D: CompiledConvStep, MaxPool2D: CompiledMaxPoolStep, AvgPool2D: CompiledAvgPoolStep,
                Subsampling: CompiledSubsamplingStep, Sigmoid: CompiledSigmoidStep, Tanh: CompiledTanhStep,
                ScaledTanh: CompiledScaledTanhStep}
    return replaced, CompiledNormPoolReLU, (CompiledConvPoolReLU, CompiledConvSquashPool)
