"""Matrix products in fixed column chunks, spread over threads: BLAS for the deep convolutions.

A deep layer's product (C3, lenet5-wide's and simple-cnn's second convolution) runs faster
in BLAS than in any loop written here, but BLAS on one thread per call: its own threads
would fight the kernels' threads for the cores (program.FastModel._threads). So the
product is cut into chunks of CHUNK_COLUMNS columns, and the chunks are shared among the
threads. A chunk's result never depends on which thread computes it or how many there are,
and a sum over chunks (the weight gradient) adds them up in chunk order afterwards: the
results are the same bit for bit for any thread count.
"""

from __future__ import annotations

import concurrent.futures
import functools
import threading

import numpy as np

from .jit import current_threads

# 1,024 columns of C3's 150-row column matrix are 600 KB: a chunk and its products stay in
# one core's L2 cache while BLAS reads them.
CHUNK_COLUMNS = 1024


@functools.lru_cache(maxsize=1)
def _pool(workers: int) -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lenet5-blas")


_local = threading.local()


def scratch(shape, dtype) -> np.ndarray:
    """A buffer of this thread's, reused from call to call: a fresh chunk-sized array each
    time would be a fresh mmap, and its pages faulted in again."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    buffer = getattr(_local, "buffer", None)
    if buffer is None or buffer.size < size:
        buffer = _local.buffer = np.empty(size, np.uint8)
    return buffer[:size].view(dtype).reshape(shape)


def chunks(columns: int, width: int = CHUNK_COLUMNS) -> list[slice]:
    return [slice(start, min(columns, start + width)) for start in range(0, columns, width)]


def in_chunks(work, columns: int, width: int = CHUNK_COLUMNS) -> list:
    """[work(chunk) for chunk in chunks(columns, width)], the chunks shared among the current
    thread count (`jit.threads`); results in chunk order."""
    pieces = chunks(columns, width)
    threads = min(current_threads(), len(pieces))
    if threads <= 1:
        return [work(piece) for piece in pieces]

    def share(first: int) -> list:
        return [work(piece) for piece in pieces[first::threads]]

    shares = list(_pool(threads).map(share, range(threads)))
    results = [None] * len(pieces)
    for first, done in enumerate(shares):
        results[first::threads] = done
    return results


def matmul_columns(left: np.ndarray, right: np.ndarray, width: int = CHUNK_COLUMNS) -> np.ndarray:
    """left @ right, the columns of `right` in chunks of `width` over the threads."""
    out = np.empty((left.shape[0], right.shape[1]), dtype=np.result_type(left, right))

    def chunk(columns: slice) -> None:
        np.matmul(left, right[:, columns], out=out[:, columns])

    in_chunks(chunk, right.shape[1], width)
    return out
