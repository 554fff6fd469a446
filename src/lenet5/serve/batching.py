"""Micro-batching: requests that arrive together share one forward pass of the model.

A forward pass of LeNet-5 on one image costs little more than on thirty: most of its time is
per call (Python, layer by layer), not per image. So each request's images go into a queue;
one worker thread takes what is queued, waits `max_wait` seconds more for others (up to
`max_batch` images), runs the model once on all of them and hands each request its rows.
With `max_wait=0` it never waits, yet still batches whatever queued up while the model ran.
Waiting is worth it only when other requests are on their way (being read or decoded), so a
caller that can count them passes `coming`: with nobody else coming, a lone request runs at
once instead of paying the wait.

Only the worker thread calls the model, so the model needs no locking of its own; a caller
that must run the model for something else (feature maps) does it through `run`, which
takes its turn in the same queue.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from typing import Callable

import numpy as np

from ..errors import Lenet5Error


class BatcherClosed(Lenet5Error):
    """The batcher was stopped; the service is shutting down."""


class MicroBatcher:
    """Runs `forward` ((N, 28, 28) uint8 -> (N, 10)) on the images of many callers at once.

    Args:
        forward: the model, on a stack of images.
        max_batch: the most images one forward pass carries (one request may bring more: it is
            never split, and then runs alone).
        max_wait: seconds to wait, after the first request of a batch, for others to join it.
        on_batch: told the size of each batch (for the metrics).
        coming: how many requests are on their way to the batcher or in it now (the batch's
            own included); the worker waits only while more are coming than the batch holds.
            None: always wait up to `max_wait`.
    """

    def __init__(self, forward: Callable[[np.ndarray], np.ndarray], *, max_batch: int = 64,
                 max_wait: float = 0.002, on_batch: Callable[[int], None] | None = None,
                 coming: Callable[[], int] | None = None):
        if max_batch < 1:
            raise ValueError(f"MicroBatcher: max_batch must be >= 1, found {max_batch}")
        if not max_wait >= 0:
            raise ValueError(f"MicroBatcher: max_wait must be >= 0 seconds, found {max_wait}")
        self.forward, self.max_batch, self.max_wait = forward, max_batch, max_wait
        self.on_batch = on_batch or (lambda size: None)
        self.coming = coming
        self._queue: queue.Queue = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="lenet5-batcher", daemon=True)
        self._thread.start()

    def submit(self, images: np.ndarray) -> Future:
        """A future of the model's (N, 10) output for `images` (N, 28, 28)."""
        return self._put(("images", np.asarray(images)))

    def run(self, task: Callable[[], object]) -> Future:
        """A future of `task()`, run on the worker thread between two batches."""
        return self._put(("task", task))

    def close(self) -> None:
        """Stop the worker after what is queued; what comes later fails with BatcherClosed."""
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        while True:  # a submission that raced with close() landed behind the stop sign
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                item[1].set_exception(BatcherClosed("the model is shutting down"))

    def _put(self, item) -> Future:
        if self._closed:
            raise BatcherClosed("the model is shutting down")
        future: Future = Future()
        self._queue.put((item, future))
        return future

    def _serve(self) -> None:
        pending = _NOTHING  # an item taken from the queue that did not fit in the last batch
        while True:
            first = pending if pending is not _NOTHING else self._queue.get()
            pending = _NOTHING
            if first is None:
                return
            (kind, payload), future = first
            if kind == "task":
                _settle(future, payload)
                continue
            batch = [first]
            count = len(payload)
            deadline = time.monotonic() + self.max_wait
            while count < self.max_batch:
                others_coming = self.coming is None or self.coming() > len(batch)
                try:  # without others coming, only what is queued already joins
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()) if others_coming else 0.0)
                except queue.Empty:
                    break
                if item is None or item[0][0] == "task" or count + len(item[0][1]) > self.max_batch:
                    pending = item  # shutdown, a task, or too many images: after this batch
                    break
                batch.append(item)
                count += len(item[0][1])
            self._run_batch(batch, count)

    def _run_batch(self, batch, count: int) -> None:
        self.on_batch(count)
        try:
            outputs = self.forward(np.concatenate([payload for (_, payload), _ in batch]))
        except BaseException as error:  # every waiting request learns of the failure
            for _, future in batch:
                future.set_exception(error)
            return
        start = 0
        for (_, payload), future in batch:
            future.set_result(outputs[start: start + len(payload)])
            start += len(payload)


_NOTHING = object()  # not None: None in the queue is the stop sign


def _settle(future: Future, task: Callable[[], object]) -> None:
    try:
        future.set_result(task())
    except BaseException as error:
        future.set_exception(error)
