"""A call from rank 0 to its workers, written as int64 words into the shared `call` record.

Rank 0 writes the record, then releases each worker's `calls` semaphore; a worker reads it
after acquiring. The record says what to run and on which rows: the array rank 0 put in
the worker's input area has shape (stop − start,) + sample_shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FORWARD, BACKWARD, PREDICT, QUIT = 1, 2, 3, 4
MAX_SAMPLE_DIMS = 8
DISTORTION_WORDS = 4  # a lenet5.data.augment.Distortion's `to_words`; all zero for none
# kind, total, batch size, input grad, itemsize, the distortion, then the sample shape
HEADER = 5 + DISTORTION_WORDS + MAX_SAMPLE_DIMS
SHAPE_START = 5 + DISTORTION_WORDS


def record_length(world: int) -> int:
    """int64 words of the record for `world` processes: the header, then each rank's share."""
    return HEADER + 1 + 2 * world


@dataclass(frozen=True)
class Call:
    """What every rank runs next.

    kind: FORWARD, BACKWARD, PREDICT or QUIT. total: rows of the whole batch. shares: each
    rank's (start, stop) rows. sample_shape, itemsize: one row of the input (4: float32,
    8: float64). batch_size: PREDICT's batch. input_grad: BACKWARD also returns dx.
    distortion: FORWARD's training distortion as words (`Distortion.to_words`), which every
    rank applies to its own rows; all zero for none.
    """

    kind: int
    total: int = 0
    shares: tuple[tuple[int, int], ...] = ()
    sample_shape: tuple[int, ...] = ()
    itemsize: int = 4
    batch_size: int = 0
    input_grad: bool = False
    distortion: tuple[int, ...] = (0,) * DISTORTION_WORDS

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32 if self.itemsize == 4 else np.float64)

    def rows(self, rank: int) -> int:
        start, stop = self.shares[rank]
        return stop - start

    def write(self, record: np.ndarray) -> None:
        if len(self.sample_shape) > MAX_SAMPLE_DIMS:
            raise ValueError(f"DataParallel: samples of shape {self.sample_shape} have more than "
                             f"{MAX_SAMPLE_DIMS} dimensions")
        record[:5] = self.kind, self.total, self.batch_size, int(self.input_grad), self.itemsize
        record[5:SHAPE_START] = self.distortion
        record[SHAPE_START : SHAPE_START + len(self.sample_shape)] = self.sample_shape
        record[HEADER] = len(self.sample_shape)
        record[HEADER + 1 : HEADER + 1 + 2 * len(self.shares)] = np.ravel(self.shares)

    @classmethod
    def read(cls, record: np.ndarray, world: int) -> "Call":
        words = [int(word) for word in record]
        kind, total, batch_size, input_grad, itemsize = words[:5]
        distortion = tuple(words[5:SHAPE_START])
        sample_shape = tuple(words[SHAPE_START : SHAPE_START + words[HEADER]])
        bounds = words[HEADER + 1 : HEADER + 1 + 2 * world]
        shares = tuple(zip(bounds[::2], bounds[1::2]))
        return cls(kind, total, shares, sample_shape, itemsize, batch_size, bool(input_grad), distortion)
