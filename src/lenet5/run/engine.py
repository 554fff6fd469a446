"""How a model runs while it trains: the engine `lenet5 train` picks.

    compiled kernels   lenet5.fast.FastModel(model, backend="compiled", threads=T)
                       its kernels on T threads (the default where Numba is installed:
                       the `fast` extra)
    NumPy steps        lenet5.fast.FastModel(model, backend="numpy")

Both wrap the same reference model, share its parameters and answer the same calls (the
protocol of `lenet5.fast.protocol.Engine`), so the trainer treats them alike. Neither owns a
loss: the trainer computes it on the logits they return.

Training runs in one process. A data-parallel engine (each batch split over processes)
was retired when the optimisation ladder (benchmarks/bench.py, lenet5, batch 64, 2 cores)
measured the compiled kernels on 2 threads at 3.50 s an epoch against 3.97 s for the NumPy
steps on 2 processes.
"""

from __future__ import annotations

import os


def default_backend() -> str:
    """The backend a new run trains on: "compiled" where Numba is installed, else "numpy"."""
    from ..fast import compiled

    return "compiled" if compiled.available() else "numpy"


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def make_engine(model, backend: str = "auto", threads: int | None = None):
    """The FastModel that runs `model` on `backend`.

    threads: the compiled kernels' threads (None: the cores this process may use); results
    do not depend on it.
    """
    from ..fast import FastModel

    return FastModel(model, backend=backend, threads=threads if threads is not None else usable_cores())
