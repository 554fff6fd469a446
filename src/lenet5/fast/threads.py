"""How many threads NumPy's BLAS multiplies with, through threadpoolctl (the `train` extra).

Why: a data-parallel pass runs one process per core, and each must keep its matrix
products to one thread; BLAS's own threads would otherwise oversubscribe the cores (two
processes × two threads ran inference at about 0.6× of one process on a 2-core machine;
benchmarks/processes.py measures it). Without threadpoolctl the limits change nothing.
"""

from __future__ import annotations

import contextlib


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
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=count, user_api="blas"):
        yield


def current_blas_threads() -> int | None:
    """The largest thread count among the loaded BLAS libraries (None without threadpoolctl)."""
    if not available():
        return None
    from threadpoolctl import threadpool_info

    counts = [info["num_threads"] for info in threadpool_info() if info.get("user_api") == "blas"]
    return max(counts) if counts else None
