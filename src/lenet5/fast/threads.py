"""How many threads NumPy's BLAS multiplies with, through threadpoolctl (the `train` extra).

Why: the compiled kernels run on threads of their own, and BLAS threads beside them would
fight them for the cores, so a pass on the compiled backend keeps BLAS to one thread
(model.py); on the NumPy steps, `FastModel(threads=N)` is BLAS's count. Without
threadpoolctl the limits change nothing.
"""

from __future__ import annotations

import contextlib
import functools
import os


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
    # Each library's own get and set calls, not `ThreadpoolController.limit`, whose bookkeeping
    # took 27 µs a call: twice a training step, 5-7% of a lenet5-1998 step (measured).
    changed = []
    for library in _controller().lib_controllers:
        if library.user_api != "blas":
            continue
        before = library.get_num_threads()
        if before is not None and before != count:
            library.set_num_threads(count)
            changed.append((library, before))
    try:
        yield
    finally:
        for library, before in changed:
            library.set_num_threads(before)


@functools.lru_cache(maxsize=None)
def _controller():
    """One controller for the process: building one scans the loaded libraries (150 to 700 µs),
    and a training step limits the threads twice, forward and backward."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def rescan_libraries() -> None:
    """Find the BLAS libraries loaded since the first limit (SciPy's, for the compiled kernels)."""
    _controller.cache_clear()


def in_parts(function, arrays, split_from: int, threads) -> None:
    """function(*pieces) on contiguous pieces of the flat, equally long `arrays` at once, at most
    `threads()` of them, each of at least `split_from` / 2 values: the calling thread runs the
    first, a pool's threads the others. `threads` is asked only for arrays long enough to split
    (asking Numba costs microseconds, a small pass's whole time). For NumPy passes and compiled
    kernels, which release the GIL; element by element, so the result does not depend on how
    the arrays are split."""
    size = arrays[0].shape[0]
    parts = 1 if size < split_from else max(1, min(threads(), size // (split_from // 2)))
    if parts == 1:
        function(*arrays)
        return
    bounds = [size * part // parts for part in range(parts + 1)]
    pieces = [[array[bounds[part] : bounds[part + 1]] for array in arrays] for part in range(parts)]
    futures = [_pool().submit(function, *piece) for piece in pieces[1:]]
    function(*pieces[0])
    for future in futures:
        future.result()


@functools.lru_cache(maxsize=None)
def _pool():
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 1) - 1), thread_name_prefix="lenet5-passes")
