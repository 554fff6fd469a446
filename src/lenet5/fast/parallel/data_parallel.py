"""DataParallel: a FastModel whose every batch is split over processes, one per core."""

from __future__ import annotations

import math
import numbers

import numpy as np

from ...nn.checks import as_float
from ...nn.predicting import Predicting
from ..backends import get_backend
from ..program import FastModel
from ..threads import blas_threads
from . import calls
from .calls import Call
from .masks import mask_bytes
from .pool import Capacity, WorkerPool

# The least the shared areas hold: a prediction runs in rounds that fit them, and a training
# batch that does not fit restarts the workers with larger ones.
SHARE_BYTES = 4 * 2**20  # each worker's input area, and its output area
MASK_BYTES = 2**18  # the Dropout masks


class DataParallel(Predicting):
    """Runs `model` as FastModel does, with each batch split over `workers` processes.

    Args:
        model: a reference `lenet5.nn.Sequential`. It stays the model: its parameters,
            buffers and modes are sent to the workers at every call, so the optimiser, a
            checkpoint or `model.train()` act on it as usual. Replacing its layers needs a
            new DataParallel; converting it (`model.to(np.float64)`) restarts the workers.
        workers: processes in all, this one included (2 for a 2-core machine); 1 runs every
            call in this process.
        timeout: seconds a worker may take to answer any one wait; a worker that does not
            is reported as a ParallelError, and the workers are stopped.
        backend: the backend every process runs (`lenet5.fast.backends`), on one thread each.
        transform_kind: the class of the distortions `forward` will be given (a
            `protocol.WordTransform`, e.g. `lenet5.data.augment.Distortion`): the workers
            rebuild each batch's distortion from its words with it.

    `forward(x)` returns the logits (N, K) of the whole batch, each process having run its
    rows; the caller computes the loss and its gradient on them, and `backward(dlogits)`
    adds to every parameter's `grad` what one process's backward would add (up to rounding).
    BatchNorm's batch statistics and Dropout's masks are the whole batch's, as in one
    process. `predict_logits(x, batch_size)` equals one process's, bit for bit.

    The workers start at the first call that splits, and stop at `close()` (or the end of a
    `with` block, or this process's exit). A batch of fewer than 2 samples per process, or
    a prediction of fewer batches than processes, runs in this process alone. This process
    runs its share with BLAS on one thread and has its own setting back after each call.
    Not thread-safe: one call at a time. The workers are spawned, so, as with any spawned
    process, a script that uses DataParallel keeps its top level under
    `if __name__ == "__main__":` (the workers import the script's module).
    """

    def __init__(self, model, workers: int = 2, timeout: float = 10.0, *, backend="auto",
                 transform_kind=None) -> None:
        if not (isinstance(workers, numbers.Integral) and not isinstance(workers, bool) and workers >= 1):
            raise ValueError(f"DataParallel: workers must be a positive integer, found {workers!r}")
        if not (isinstance(timeout, numbers.Real) and not isinstance(timeout, bool) and 0 < timeout < math.inf):
            raise ValueError(f"DataParallel: timeout must be a positive number of seconds, found {timeout!r}")
        self.model = model
        self.workers, self.timeout = int(workers), float(timeout)
        # Every process runs the same backend, one thread each: the processes hold the cores.
        self.backend = get_backend(backend)
        self.transform_kind = transform_kind
        self._local = FastModel(model, backend=self.backend, threads=1)  # calls too small to split
        self._pool: WorkerPool | None = None
        self._split = None  # (pool, shares) of the last forward, if it was split

    # -- training -------------------------------------------------------------------------
    def forward(self, x, distortion=None) -> np.ndarray:
        """Logits (N, K) of the batch x (N, C, H, W), each process computing a share of the rows.

        distortion: a `lenet5.data.augment.Distortion` of the batch: each process distorts its
        own rows before running them, so the distortions are split with the batch.
        """
        x = as_float(x)
        self._split = None
        if self.workers == 1 or len(x) < 2 * self.workers:
            return self._local.forward(x, distortion)
        shares = split_rows(len(x), self.workers)
        logits = self._guarded(self._forward_split, x, shares, distortion)
        self._split = (self._pool, shares)
        return logits

    def backward(self, dout, input_grad: bool = False):
        """Add the gradients of the last forward's batch to every parameter's `grad`.

        dout: (N, K), the loss's gradient with respect to the logits `forward` returned.
        Returns dx (N, C, H, W) if `input_grad`, else None.
        """
        if self._split is None:
            return self._local.backward(dout, input_grad=input_grad)
        pool, shares = self._split
        dout = as_float(dout)
        if pool is not self._pool:
            raise RuntimeError("DataParallel: backward() needs a forward() first")
        if len(dout) != shares[-1][1]:
            raise ValueError(f"DataParallel.backward: dout has {len(dout)} rows, the forward had {shares[-1][1]}")
        return self._guarded(self._backward_split, dout, shares, input_grad)

    def _forward_split(self, x: np.ndarray, shares, distortion) -> np.ndarray:
        sample_shape = x.shape[1:]
        dropout = self._local.dropout_layers(sample_shape)
        pool = self._ready(Capacity(self._share_bytes(shares, sample_shape), mask_bytes(dropout, len(x))))
        pool.masks.draw(dropout, len(x))  # from the model's generators, as one process would
        pool.masks.use(dropout, len(x), shares[0])
        for rank in range(1, self.workers):
            pool.put_input(rank, x[slice(*shares[rank])])
        if distortion is not None and self.transform_kind is None:
            raise ValueError("DataParallel: a distortion needs transform_kind=, the class its workers rebuild it with")
        words = (0,) * calls.DISTORTION_WORDS if distortion is None else distortion.to_words()
        pool.post(Call(calls.FORWARD, len(x), shares, sample_shape, x.itemsize, distortion=words))
        with blas_threads(1):  # rank 0's rows start at row 0, where FastModel's distortion starts
            logits = pool.fast.forward(x[slice(*shares[0])], distortion)
        pool.wait_answers()
        return self._gather(pool, logits, shares)

    def _backward_split(self, dout: np.ndarray, shares, input_grad: bool):
        pool = self._pool
        for rank in range(1, self.workers):
            pool.put_input(rank, dout[slice(*shares[rank])])
        pool.post(Call(calls.BACKWARD, len(dout), shares, dout.shape[1:], dout.itemsize, input_grad=input_grad))
        with blas_threads(1):
            dx = pool.fast.backward(dout[slice(*shares[0])], input_grad=input_grad)
        pool.wait_answers()
        pool.state.add_gradients(pool.memory, self.workers)
        return None if dx is None else self._gather(pool, dx, shares)

    # -- predictions ----------------------------------------------------------------------
    def predict_logits(self, x, batch_size: int = 64) -> np.ndarray:
        """Logits (N, K) of the eval-mode model, as `FastModel.predict_logits`, bit for bit.

        Whole batches of `batch_size` are dealt to the processes, so each batch is the one a
        single process would run. The model's modes are left as they were.
        """
        if not (isinstance(batch_size, numbers.Integral) and not isinstance(batch_size, bool) and batch_size > 0):
            raise ValueError(f"DataParallel.predict_logits: batch_size must be a positive integer, found {batch_size!r}")
        x = as_float(x)
        if self.workers == 1 or -(-len(x) // batch_size) < self.workers:
            return self._local.predict_logits(x, batch_size)
        return self._guarded(self._predict_split, x, batch_size)

    def _predict_split(self, x: np.ndarray, batch_size: int) -> np.ndarray:
        batch_bytes = self._share_bytes([(0, batch_size)], x.shape[1:])
        pool = self._ready(Capacity(batch_bytes, 0))
        per_share = pool.capacity.share_bytes // batch_bytes  # batches each process runs per round
        batches, chunks = -(-len(x) // batch_size), []
        for first in range(0, batches, per_share * self.workers):
            shares = deal_batches(first, min(per_share * self.workers, batches - first), self.workers,
                                  batch_size, len(x))
            for rank in range(1, self.workers):
                pool.put_input(rank, x[slice(*shares[rank])])
            pool.post(Call(calls.PREDICT, len(x), shares, x.shape[1:], x.itemsize, batch_size=batch_size))
            with blas_threads(1):
                logits = pool.fast.predict_logits(x[slice(*shares[0])], batch_size)
            pool.wait_answers()
            chunks.append(self._gather(pool, logits, shares))
        return np.concatenate(chunks)

    # -- the group ------------------------------------------------------------------------
    def _ready(self, needed: Capacity) -> WorkerPool:
        """The pool, started (or restarted) if there is none, the model's arrays changed shape
        or dtype, or its shared areas are too small for this call."""
        pool = self._pool
        if pool is not None and (pool.state.current_signature() != pool.state.signature
                                 or not pool.capacity.holds(needed)):
            needed = needed.union(pool.capacity)
            self.close()
        if self._pool is None:
            self._pool = WorkerPool(self.model, self.workers, self.timeout,
                                    needed.union(Capacity(SHARE_BYTES, MASK_BYTES)), self.backend.name,
                                    self.transform_kind)
        return self._pool

    def _share_bytes(self, shares, sample_shape) -> int:
        """Bytes of the largest share's input, output or input gradient (float64 at most)."""
        rows = max(stop - start for start, stop in shares)
        values = max(math.prod(sample_shape), math.prod(self.model.output_shape(tuple(sample_shape))))
        return rows * values * 8

    @staticmethod
    def _gather(pool: WorkerPool, own: np.ndarray, shares) -> np.ndarray:
        """Rank 0's rows `own`, then each worker's rows of the same kind, as one array."""
        parts = [own] + [pool.output(rank, (stop - start,) + own.shape[1:], own.dtype)
                         for rank, (start, stop) in enumerate(shares) if rank > 0 and stop > start]
        return np.concatenate(parts)

    def _guarded(self, method, *args):
        """Run a split call; if anything goes wrong, no worker is left mid-call."""
        try:
            return method(*args)
        except BaseException:
            self.close(graceful=False)
            raise

    # -- as FastModel ---------------------------------------------------------------------
    def parameters(self):
        return self.model.parameters()

    def train(self, mode: bool = True) -> "DataParallel":
        self.model.train(mode)
        return self

    def eval(self) -> "DataParallel":
        return self.train(False)

    def worker_pids(self) -> list[int]:
        """The process ids of the running workers (none before the first split call)."""
        return [] if self._pool is None else self._pool.pids

    def close(self, graceful: bool = True) -> None:
        """Stop the workers (a later call starts new ones)."""
        pool, self._pool, self._split = self._pool, None, None
        if pool is not None:
            pool.close(graceful)

    def __enter__(self) -> "DataParallel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DataParallel(workers={self.workers}, timeout={self.timeout:g})"


def split_rows(total: int, parts: int) -> list[tuple[int, int]]:
    """(start, stop) of `parts` consecutive shares of `total` rows, sizes differing by one at most."""
    bounds = [rank * total // parts for rank in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def deal_batches(first: int, count: int, parts: int, batch_size: int, total: int) -> list[tuple[int, int]]:
    """(start, stop) rows of `parts` shares of the `count` batches from batch `first` on.

    Shares start at multiples of batch_size, so every batch is one a single process would
    run; rank 0's share is the largest and never empty, a last round may leave others empty.
    """
    bounds = [min(total, (first + -(-rank * count // parts)) * batch_size) for rank in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))
