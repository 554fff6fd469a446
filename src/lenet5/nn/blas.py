"""The number of threads NumPy's BLAS (OpenBLAS) multiplies with, read and set at run time.

Why: data-parallel work (parallel.py) runs one process per core, and each must keep its
matrix products to one thread; OpenBLAS's own threads would otherwise oversubscribe the
cores (two processes × two threads ran inference at about 0.6× of one process on this
2-core machine; benchmarks/processes.py measures it). NumPy has no API for it, so the
OpenBLAS library NumPy loaded is found among the process's mapped files and called through
ctypes, as threadpoolctl does. Without OpenBLAS (NumPy built on MKL or Accelerate) the
functions report None and change nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os

# The names OpenBLAS exports them under: plain builds, and the symbol-suffixed build that
# NumPy's wheels bundle (scipy-openblas, 64-bit integers).
_PREFIXES = ("scipy_openblas_", "openblas_")
_SUFFIXES = ("64_", "")


@functools.lru_cache(maxsize=None)
def _functions():
    """(get, set) ctypes functions of the loaded OpenBLAS, or None."""
    for path in _loaded_libraries():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in _PREFIXES:
            for suffix in _SUFFIXES:
                get = getattr(library, f"{prefix}get_num_threads{suffix}", None)
                set_ = getattr(library, f"{prefix}set_num_threads{suffix}", None)
                if get is not None and set_ is not None:
                    get.restype, set_.argtypes, set_.restype = ctypes.c_int, [ctypes.c_int], None
                    return get, set_
    return None


def _loaded_libraries() -> list[str]:
    import numpy  # noqa: F401  (loads the BLAS it is linked against)

    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split(None, 5)[-1].strip() for line in maps if "openblas" in line.lower()}
    except OSError:  # not Linux
        return []
    return sorted(path for path in paths if os.path.isfile(path))


def get_threads() -> int | None:
    functions = _functions()
    return None if functions is None else int(functions[0]())


def set_threads(count: int) -> None:
    functions = _functions()
    if functions is not None:
        functions[1](int(count))


@contextlib.contextmanager
def limited_threads(count: int):
    """Run the block with BLAS on at most `count` threads, then restore the previous count."""
    previous = get_threads()
    if previous is None or previous <= count:
        yield
        return
    set_threads(count)
    try:
        yield
    finally:
        set_threads(previous)
