"""What the processes of a data-parallel group share, and the all-sum they compute with it.

`Channels` is made by rank 0 and handed to each worker at its start: one shared block (the
transport's own arrays plus the caller's payload) and the semaphores that order every
hand-over. `Group` is one process's end of it: its rank, and `all_sum`.

Semaphores, three kinds:
    calls[w]        rank 0 → worker w: a call is posted (described in the payload)
    done[w]         worker w → rank 0: the call is answered (or the worker is ready)
    arrivals[s][r]  rank s → rank r: s has written its vector for the next all-sum
Writes made before a release are seen after the matching acquire, so no shared value is
ever read without one in between.
"""

from __future__ import annotations

import numpy as np

from .memory import SharedArrays

SLOT_LENGTH = 4096  # float64 values one exchange carries; longer vectors take several
ERROR_BYTES = 4096  # a worker's error message, UTF-8


class Channels:
    """The shared block and the semaphores of a group of `world` processes.

    Args:
        context: the multiprocessing context the workers are started with.
        world: processes in the group, rank 0 (the caller) included.
        payload: (name, shape, dtype) of the arrays the caller wants shared besides.
    """

    def __init__(self, context, world: int, payload=()) -> None:
        self.world = world
        self.memory = SharedArrays(context, [
            ("errors", (world, ERROR_BYTES), np.uint8),
            ("slots", (2, world, SLOT_LENGTH), np.float64),
            *payload,
        ])
        self.calls = [None] + [context.Semaphore(0) for _ in range(1, world)]
        self.done = [None] + [context.Semaphore(0) for _ in range(1, world)]
        self.arrivals = [[None if s == r else context.Semaphore(0) for r in range(world)] for s in range(world)]

    def report_error(self, rank: int, message: str) -> None:
        """Store rank's error message (cut to fit), for rank 0 to read once the rank has exited."""
        data = message.encode("utf-8", "replace")[: ERROR_BYTES - 1]
        row = self.memory["errors"][rank]
        row[: len(data)] = np.frombuffer(data, np.uint8)
        row[len(data)] = 0

    def error(self, rank: int) -> str:
        raw = self.memory["errors"][rank].tobytes()
        return raw[: raw.find(b"\0")].decode("utf-8", "replace")


class Group:
    """One process's end of `channels`: its rank and the all-sum over every rank.

    Args:
        channels: the group's Channels.
        rank: this process's rank, 0 for the caller.
        wait_for: wait_for(peer, semaphore) acquires `semaphore`, released by rank `peer`;
            it raises (or exits) when the peer cannot answer, so no exchange waits forever.
    """

    def __init__(self, channels: Channels, rank: int, wait_for) -> None:
        self.channels, self.rank, self.world = channels, rank, channels.world
        self.wait_for = wait_for
        self.exchanges = 0
        self._slots = channels.memory["slots"]

    def all_sum(self, vector) -> np.ndarray:
        """`vector` summed over the ranks, in rank order: every rank gets the same bits.

        Shape: any -> the same shape and dtype (the sum itself runs in float64). Every rank
        must call it the same number of times, with vectors of the same size.
        """
        vector = np.asarray(vector)
        flat = vector.reshape(-1)
        total = np.concatenate([self._exchange(flat[start : start + SLOT_LENGTH])
                                for start in range(0, flat.size, SLOT_LENGTH)] or [np.zeros(0)])
        return total.astype(vector.dtype, copy=False).reshape(vector.shape)

    def _exchange(self, part: np.ndarray) -> np.ndarray:
        # Two sets of slots, used in turn: a rank writes exchange k + 2 only after every rank
        # has arrived at k + 1, which each does only after it has read all of exchange k.
        self.exchanges += 1
        slots = self._slots[self.exchanges & 1]
        slots[self.rank, : part.size] = part
        arrivals = self.channels.arrivals
        for peer in range(self.world):
            if peer != self.rank:
                arrivals[self.rank][peer].release()
        for peer in range(self.world):
            if peer != self.rank:
                self.wait_for(peer, arrivals[peer][self.rank])
        total = slots[0, : part.size].copy()
        for rank in range(1, self.world):
            total += slots[rank, : part.size]
        return total
