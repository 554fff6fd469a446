"""Acquiring a semaphore without ever waiting blindly: poll briefly, then block in slices.

Why poll first: in a training step the ranks exchange about a dozen times, each time
waiting for a peer a few microseconds away, and a worker waits for the next call while rank
0 computes the loss, steps the optimiser and cuts the next batch (a few hundred
microseconds). A blocked process takes tens of microseconds to be woken (about 60 µs here,
against 3 µs for a polled round trip), so a waiter first tries `acquire(False)` for
POLL_SECONDS, which costs a core only that long. 2 ms outlasts the gap between two calls of
a training step; 0.3 ms did not, and a worker then slept through each gap. Then it blocks, in
slices of at most `slice_seconds`, and between slices calls `check`, which raises (or exits)
when the peer it waits for can no longer answer. A semaphore's acquire, unlike a read of a
shared counter, also orders memory: what the releasing process wrote before `release()` is
seen after `acquire()` returns, on any CPU.
"""

from __future__ import annotations

import time
from typing import Callable

POLL_SECONDS = 2e-3


def acquire(semaphore, timeout: float | None, check: Callable[[], None], slice_seconds: float = 0.05) -> bool:
    """Acquire `semaphore` within `timeout` seconds (None: as long as `check` lets it).

    Returns False when the time is up. `check()` runs between blocking slices; it raises,
    or exits the process, to stop the wait.
    """
    if semaphore.acquire(False):
        return True
    started = time.perf_counter()
    while time.perf_counter() - started < POLL_SECONDS:
        if semaphore.acquire(False):
            return True
    deadline = None if timeout is None else started + timeout
    while True:
        remaining = slice_seconds if deadline is None else min(slice_seconds, deadline - time.perf_counter())
        if remaining <= 0:
            return semaphore.acquire(False)
        if semaphore.acquire(True, remaining):
            return True
        check()
