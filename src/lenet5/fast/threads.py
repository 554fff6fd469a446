"""How many threads NumPy's BLAS multiplies with, through threadpoolctl (the `train` extra).

Why: the compiled kernels run on threads of their own, and BLAS threads beside them would
fight them for the cores, so a pass on the compiled backend keeps BLAS to one thread
(model.py); on the NumPy steps, `FastModel(threads=N)` is BLAS's count. Without
threadpoolctl the limits change nothing.
"""

from __future__ import annotations

import contextlib
import functools


def available() -> bool:
    """Whether BLAS threads can be limited here (threadpoolctl is installed)."""
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def blas_threads(count: int):
    """Run the block with BLAS on at most `count` threads, then restore the previous count."""
    if not available():
        yield
        return
    with _controller().limit(limits=count, user_api="blas"):
        yield


@functools.lru_cache(maxsize=None)
def _controller():
    """One controller for the process: building one scans the loaded libraries (150 to 700 µs),
    and a training step limits the threads twice, forward and backward."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def rescan_libraries() -> None:
    """Find the BLAS libraries loaded since the first limit (SciPy's, for the compiled kernels)."""
    _controller.cache_clear()
