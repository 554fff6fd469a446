"""How a model runs while it trains: the strategy `lenet5 train --workers N` picks.

    workers == 1   lenet5.fast.FastModel(model)            one process
    workers  > 1   lenet5.fast.DataParallel(model, N)      each batch split over N processes

Both wrap the same reference model, share its parameters and answer the same calls
(forward, backward, predict_logits, close), so the trainer treats them alike. Neither owns
a loss: the trainer computes it on the logits they return.
"""

from __future__ import annotations

import os

# The most processes measured (benchmarks/bench.py, on a 2-core machine); beyond it is untested.
AUTO_WORKERS_MAX = 2


# Below this many images a batch is not split: each process's share would be a handful of
# images, whose step costs less than the transport around it (lenet5-1998 trains on batches of 4).
SPLIT_FROM_BATCH = 32


def auto_workers(batch_size: int | None = None) -> int:
    """The cores this process may use, at most AUTO_WORKERS_MAX; 1 for batches smaller than
    SPLIT_FROM_BATCH, and where BLAS threads cannot be limited (no threadpoolctl), since
    processes on multi-threaded BLAS slow each other."""
    from .fast import threads

    if not threads.available() or (batch_size is not None and batch_size < SPLIT_FROM_BATCH):
        return 1
    return max(1, min(usable_cores(), AUTO_WORKERS_MAX))


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def make_engine(model, workers: int = 1):
    """FastModel for one worker, DataParallel for more; close it when done (`with` works)."""
    if workers > 1:
        from .fast import DataParallel  # processes and shared memory: loaded only when asked for

        return DataParallel(model, workers)
    from .fast import FastModel

    return FastModel(model)
