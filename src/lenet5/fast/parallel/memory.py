"""Named NumPy arrays in one block of memory that this process and its spawned workers share.

The block comes from multiprocessing's heap (`context.RawArray`): its file is unlinked as soon
as it is made, so nothing is left behind however the processes end, and it reaches a worker
through the worker's start, as a file descriptor. The arrays start 64 bytes apart at least
(a cache line), so two processes writing neighbouring arrays do not slow each other down.
"""

from __future__ import annotations

import numpy as np

LINE = 64  # bytes in a cache line


def _rounded(nbytes: int) -> int:
    return -(-nbytes // LINE) * LINE


class SharedArrays:
    """Arrays laid out one after another in a shared block, reached by name.

    Args:
        context: a multiprocessing context (its `RawArray` allocates the block).
        layout: (name, shape, dtype) of each array, in order.

    Pass the object to a spawned process as an argument of its start; it arrives with the
    same arrays over the same memory. Writes become visible to another process only through
    a synchronisation between the two (a semaphore, in this package).
    """

    def __init__(self, context, layout) -> None:
        self.layout = tuple((name, tuple(shape), np.dtype(dtype).str) for name, shape, dtype in layout)
        self._block = context.RawArray("B", max(1, self.nbytes(self.layout)))
        self._arrays = self._carve()

    @staticmethod
    def nbytes(layout) -> int:
        return sum(_rounded(int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize)
                   for _, shape, dtype in layout)

    def _carve(self) -> dict[str, np.ndarray]:
        block = np.frombuffer(self._block, np.uint8)
        arrays, offset = {}, 0
        for name, shape, dtype in self.layout:
            count = int(np.prod(shape, dtype=np.int64))
            nbytes = count * np.dtype(dtype).itemsize
            arrays[name] = block[offset : offset + nbytes].view(dtype).reshape(shape)
            offset += _rounded(nbytes)
        return arrays

    def __getitem__(self, name: str) -> np.ndarray:
        return self._arrays[name]

    def __reduce__(self):
        # The block pickles as a file descriptor, which multiprocessing allows only while it
        # starts a process: exactly how a worker receives it.
        return _rebuild, (self._block, self.layout)


def _rebuild(block, layout) -> SharedArrays:
    shared = SharedArrays.__new__(SharedArrays)
    shared.layout, shared._block = layout, block
    shared._arrays = shared._carve()
    return shared


def typed(area: np.ndarray, shape, dtype) -> np.ndarray:
    """The first bytes of the uint8 `area` seen as an array of `shape` and `dtype`."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes > area.size:
        raise ValueError(f"DataParallel: an array of shape {tuple(shape)} ({nbytes} bytes) does not fit "
                         f"a shared area of {area.size} bytes")
    return area[:nbytes].view(dtype).reshape(shape)
