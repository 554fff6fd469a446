"""How a model runs while it trains: the engine `lenet5 train` picks.

    compiled kernels   lenet5.fast.FastModel(model, backend="compiled", threads=T)
                       one process, its kernels on T threads (the default where Numba is
                       installed: the `fast` extra)
    NumPy steps        lenet5.fast.FastModel(model, backend="numpy"), or with workers > 1
                       lenet5.fast.DataParallel(model, N): each batch split over N processes

All wrap the same reference model, share its parameters and answer the same calls (the
protocol of `lenet5.fast.protocol.Engine`), so the trainer treats them alike. None owns a
loss: the trainer computes it on the logits they return.
"""

from __future__ import annotations

import os

# The most processes measured (benchmarks/bench.py, on a 2-core machine); beyond it is untested.
AUTO_WORKERS_MAX = 2


# Below this many images a batch is not split: each process's share would be a handful of
# images, whose step costs less than the transport around it (lenet5-1998 trains on batches of 4).
SPLIT_FROM_BATCH = 32


def default_backend() -> str:
    """The backend a new run trains on: "compiled" where Numba is installed, else "numpy"."""
    from .fast import compiled

    return "compiled" if compiled.available() else "numpy"


def auto_workers(batch_size: int | None = None, backend: str = "numpy") -> int:
    """Processes for the NumPy steps: the cores this process may use, at most AUTO_WORKERS_MAX;
    1 for batches smaller than SPLIT_FROM_BATCH, where BLAS threads cannot be limited (no
    threadpoolctl), since processes on multi-threaded BLAS slow each other, and for the
    compiled backend, which spreads its kernels over threads instead."""
    from .fast import threads

    if backend == "compiled" or not threads.available() or (batch_size is not None and batch_size < SPLIT_FROM_BATCH):
        return 1
    return max(1, min(usable_cores(), AUTO_WORKERS_MAX))


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def make_engine(model, workers: int = 1, backend: str = "auto", threads: int | None = None):
    """FastModel for one worker, DataParallel for more; close it when done (`with` works).

    threads: the compiled kernels' threads (None: the cores this process may use); results
    do not depend on it.
    """
    if workers > 1:
        from .data.augment import Distortion
        from .fast import DataParallel  # processes and shared memory: loaded only when asked for

        return DataParallel(model, workers, backend=backend, transform_kind=Distortion)
    from .fast import FastModel

    return FastModel(model, backend=backend, threads=threads if threads is not None else usable_cores())
