"""How a kernel of the compiled backend is compiled: Numba, cached, in a serial and a parallel build.

Every kernel is plain Python loops over NumPy arrays, compiled by Numba on its first call
for the dtypes it is given (float32 for training, float64 for the tests' 1e-10 checks).

Why two builds of each kernel: a parallel region costs tens of microseconds to start its
threads, more than a whole step of LeNet-5 1998 on its batches of 4 patterns; small work
runs on the serial build. The large kernels (the direct convolutions, max-pooling, the
fused step) are each written as a parallel loop over tasks and, beside it, the work of one
task as a `serial_kernel`, compiled once: both builds then run the same machine code for
every task, and the parallel build compiles only its loop. The loop passes its task index
as an int64: prange's own is unsigned, which would compile the task's function a second
time. Both builds run the same loops in the same order, and every parallel loop hands each
output element (or each per-channel sum) to exactly one iteration, so no sum is ever split
between threads: results are the same bit for bit whatever the thread count, and serial
and parallel builds agree.

Why these fastmath flags: `reassoc` and `contract` let LLVM vectorise a reduction (eight
float32 partial sums in an AVX2 register, added up in a fixed order) and fuse multiply-adds;
the flags that would let it assume no NaN or infinity are left off, so a model that
overflows still shows it in its outputs.

Where the compiled code goes: Numba's cache, beside this file's `__pycache__`, or, where
the package directory is read-only, the user's cache directory (Numba's own fallback);
NUMBA_CACHE_DIR overrides both.
"""

from __future__ import annotations

import contextlib
import functools
import os
import types

# Numba's OpenMP threads otherwise spin for a while after each parallel region, on the very
# cores that the main thread's NumPy work (dense layers, the optimiser) wants
# next: a lenet5 epoch at batch 128 on 2 cores took 4.5-4.8 s spinning, 3.6-3.9 s sleeping
# (`lenet5 train --epochs 2`, measured). Read once, when Numba first loads OpenMP, so it is
# set here, before any kernel runs; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402  (after the setting above)
from numba import njit, prange  # noqa: E402, F401  (prange: the kernels' parallel loops)

FASTMATH = {"reassoc", "contract"}

# Division as NumPy has it (x / 0 is ±inf or NaN), not Python's ZeroDivisionError: the check
# for a zero divisor is a branch in every divide, and a loop with a branch does not vectorise
# (the rational tanh in elementwise.py: 2.4 ns a value with the check, measured).
ERROR_MODEL = "numpy"

# Only the loops written `prange` run in parallel. Numba's other automatic conversions (array
# expressions into parallel loops, and their fusion) have nothing to do in these kernels and
# doubled the parallel builds' compile time (conv_forward: 1.87 s against 0.93 s, measured).
PARALLEL = {"prange": True}

# Below this many multiply-adds (or values, for the memory passes) a kernel runs its serial
# build: measured on a 2-core machine, a parallel region's start (~20-40 µs) costs more than
# half the work it would share under it.
PARALLEL_FROM = 200_000


class Kernel:
    """A kernel's two builds: `kernel(work, *args)` runs the parallel one when `work` (its
    multiply-adds or values touched) reaches PARALLEL_FROM, the serial one otherwise."""

    def __init__(self, function) -> None:
        self.python = function
        self.serial = njit(cache=True, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)(function)
        self.parallel = njit(cache=True, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True,
                             parallel=PARALLEL)(
            _renamed(function, "parallel"))
        functools.update_wrapper(self, function)

    def __call__(self, work: int, *args):
        build = self.parallel if work >= PARALLEL_FROM else self.serial
        return build(*args)


def serial_kernel(function):
    """Decorator: compile `function` once, serial: a helper that kernels call inside their
    parallel loops (each iteration already runs on its own thread)."""
    return njit(cache=True, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)(function)


def inline(function):
    """Decorator: an innermost loop that kernels call, inlined into each caller by Numba
    before LLVM sees it, so it is vectorised in place like loops written out there."""
    return njit(inline="always", fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)(function)


def _renamed(function, suffix: str):
    """A copy of `function` under another qualified name: Numba names its cache files by
    it and keys them by signature alone, so two builds of one function would overwrite
    each other's cached code."""
    copy = types.FunctionType(function.__code__, function.__globals__, function.__name__,
                              function.__defaults__, function.__closure__)
    copy.__qualname__ = f"{function.__qualname__}_{suffix}"
    copy.__module__ = function.__module__
    return copy


def kernel(function) -> Kernel:
    """Decorator: compile `function` (whose parallel loops are written `prange`) both ways."""
    return Kernel(function)


def current_threads() -> int:
    """The thread count the calling thread's parallel work runs on now."""
    return numba.get_num_threads()


@contextlib.contextmanager
def threads(count: int):
    """Run the block's parallel builds on `count` threads (at most NUMBA_NUM_THREADS), then
    restore the calling thread's count."""
    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(count), numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(before)
