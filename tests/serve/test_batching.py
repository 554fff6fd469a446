"""MicroBatcher: concurrent callers share forward passes, and each gets its own rows back."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from lenet5.serve.batching import BatcherClosed, MicroBatcher


class GatedForward:
    """A 'model' that returns each image's first pixel times 10 and records its batch sizes;
    it blocks until released, so callers can queue up behind a running batch."""

    def __init__(self):
        self.sizes: list[int] = []
        self.gate = threading.Event()
        self.started = threading.Event()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.sizes.append(len(images))
        self.started.set()
        self.gate.wait()
        return images[:, :1, 0].astype(np.float64) * 10


def images(*values: int) -> np.ndarray:
    return np.array([np.full((28, 28), value, np.uint8) for value in values])


def test_requests_queued_behind_a_running_batch_share_the_next_one():
    forward = GatedForward()
    batcher = MicroBatcher(forward, max_batch=64, max_wait=0.0)
    try:
        first = batcher.submit(images(1))
        forward.started.wait()
        waiting = [batcher.submit(images(v, v + 1)) for v in (2, 4, 6)]  # queued while the model runs
        forward.gate.set()
        assert first.result().ravel().tolist() == [10]
        assert [f.result().ravel().tolist() for f in waiting] == [[20, 30], [40, 50], [60, 70]]
        assert forward.sizes == [1, 6]
    finally:
        forward.gate.set()
        batcher.close()


def test_a_batch_never_exceeds_max_batch_and_keeps_the_order():
    forward = GatedForward()
    batcher = MicroBatcher(forward, max_batch=4, max_wait=0.0)
    try:
        blocker = batcher.submit(images(0))
        forward.started.wait()
        futures = [batcher.submit(images(v)) for v in range(1, 10)]
        forward.gate.set()
        blocker.result()
        assert [int(f.result()[0, 0]) for f in futures] == [10 * v for v in range(1, 10)]
        assert forward.sizes == [1, 4, 4, 1] and max(forward.sizes) <= 4
    finally:
        forward.gate.set()
        batcher.close()


def test_a_request_larger_than_max_batch_runs_alone_and_whole():
    sizes = []
    batcher = MicroBatcher(lambda x: (sizes.append(len(x)), np.zeros((len(x), 10)))[1], max_batch=2, max_wait=0.0)
    try:
        assert batcher.submit(images(1, 2, 3, 4, 5)).result().shape == (5, 10)
        assert sizes == [5]
    finally:
        batcher.close()


def test_a_failing_forward_fails_every_request_of_its_batch_and_the_next_batch_runs():
    forward = GatedForward()
    calls = []

    def flaky(x):
        calls.append(len(x))
        if len(calls) == 2:
            raise ValueError("model broke")
        return forward(x)

    batcher = MicroBatcher(flaky, max_batch=64, max_wait=0.0)
    try:
        first = batcher.submit(images(1))
        forward.started.wait()
        doomed = [batcher.submit(images(2)), batcher.submit(images(3))]
        forward.gate.set()
        first.result()
        for future in doomed:
            with pytest.raises(ValueError, match="model broke"):
                future.result()
        assert batcher.submit(images(4)).result()[0, 0] == 40
    finally:
        batcher.close()


def test_tasks_run_on_the_worker_between_batches_and_close_refuses_more():
    batcher = MicroBatcher(lambda x: np.zeros((len(x), 10)), max_wait=0.001)
    names = batcher.run(lambda: threading.current_thread().name).result()
    assert names == "lenet5-batcher"
    with pytest.raises(ZeroDivisionError):
        batcher.run(lambda: 1 / 0).result()
    batcher.close()
    with pytest.raises(BatcherClosed):
        batcher.submit(images(1))


@pytest.mark.parametrize("arguments", [dict(max_batch=0), dict(max_wait=-1.0), dict(max_wait=float("nan"))])
def test_bad_settings_are_refused(arguments):
    with pytest.raises(ValueError, match="MicroBatcher"):
        MicroBatcher(lambda x: x, **arguments)


GUARD_SECONDS = 60  # only against a hang; nothing is timed


def test_a_lone_request_does_not_wait_when_nobody_else_is_coming():
    sizes = []
    batcher = MicroBatcher(lambda x: (sizes.append(len(x)), np.zeros((len(x), 10)))[1], max_wait=3600.0,
                           coming=lambda: 1)  # an hour's wait, were it waited
    try:
        assert batcher.submit(images(1)).result(timeout=GUARD_SECONDS).shape == (1, 10)
        assert sizes == [1]
    finally:
        batcher.close()


def test_a_batch_waits_for_requests_still_on_their_way():
    sizes = []
    batcher = MicroBatcher(lambda x: (sizes.append(len(x)), np.zeros((len(x), 10)))[1], max_wait=3600.0,
                           coming=lambda: 3)
    try:
        futures = []
        for value in (1, 2, 3):
            futures.append(batcher.submit(images(value)))
            threading.Event().wait(0.01)  # spaced out: the worker has taken the first alone by now
        for future in futures:
            future.result(timeout=GUARD_SECONDS)
        assert sizes == [3]  # however the three were spaced, the first waited for the other two
    finally:
        batcher.close()
