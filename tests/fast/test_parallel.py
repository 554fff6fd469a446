"""DataParallel: a batch split over spawned processes gives one process's logits and gradients,
and no worker that fails, dies or stalls can leave the caller waiting."""

import contextlib
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lenet5 import nn as ln
from lenet5.fast import FastModel
from lenet5.fast.parallel import DataParallel, ParallelError
from lenet5.fast.parallel import data_parallel as data_parallel_module
from lenet5.fast.parallel.transport import SLOT_LENGTH, Channels, Group
from lenet5.fast.parallel.waiting import acquire
from lenet5.fast.threads import available as threads_available, current_blas_threads
from lenet5.models import build_model
from lenet5.nn import Adam, SoftmaxCrossEntropy

SHAPES = {"lenet5": (1, 28, 28), "relu": (1, 32, 32), "classic": (1, 28, 28), "lenet5-1998": (1, 32, 32)}


def batch(model_name, size, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((size,) + SHAPES[model_name]).astype(dtype)
    return x, rng.integers(0, 10, size)


def step(engine, x, y, input_grad=False):
    """The caller's half of a training step: forward, loss on the logits, backward.
    (The reference model's backward always returns the input gradient.)"""
    logits = engine.forward(x)
    loss, dlogits = SoftmaxCrossEntropy.value_and_grad(logits, y)
    if isinstance(engine, ln.Module):
        return loss, logits, engine.backward(dlogits)
    return loss, logits, engine.backward(dlogits, input_grad=input_grad)


def assert_same_state(expected, model, rtol):
    for (name, p), q in zip(expected.named_parameters(), model.parameters()):
        np.testing.assert_allclose(q.grad, p.grad, rtol=rtol, atol=rtol * np.abs(p.grad).max(), err_msg=name)
    for (name, a), (_, b) in zip(expected.named_buffers(), model.named_buffers()):
        np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol, err_msg=name)


def reaped(pid) -> bool:
    """Whether child `pid` has exited and been waited for (not left a zombie)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


# -- the transport on its own -----------------------------------------------------------------
VECTORS = [np.arange(5.0), np.linspace(-1, 1, 2 * SLOT_LENGTH + 3).reshape(-1, 1), np.ones((2, 3), np.float32)]


def _contribution(rank, vector):
    return vector * (rank + 1) + 0.1 * rank


def _sum_as_rank(rank, channels):
    """A spawned rank: all-sum each of VECTORS scaled by its rank, store what it got."""
    group = Group(channels, rank, lambda peer, semaphore: acquire(semaphore, 10.0, lambda: None) or sys.exit(3))
    for i, vector in enumerate(VECTORS):
        total = group.all_sum(_contribution(rank, vector))
        assert total.dtype == vector.dtype and total.shape == vector.shape
        channels.memory[f"result.{rank}.{i}"][...] = total


def test_all_sum_adds_every_rank_s_vector_in_rank_order_and_every_rank_gets_the_same_bits():
    context, world = multiprocessing.get_context("spawn"), 3
    payload = [(f"result.{rank}.{i}", v.shape, v.dtype) for rank in range(world) for i, v in enumerate(VECTORS)]
    channels = Channels(context, world, payload)
    workers = [context.Process(target=_sum_as_rank, args=(rank, channels)) for rank in range(1, world)]
    for process in workers:
        process.start()
    _sum_as_rank(0, channels)  # vectors longer than a slot take several exchanges
    for process in workers:
        process.join(30)
        assert process.exitcode == 0
    for i, vector in enumerate(VECTORS):
        expected = sum((_contribution(rank, vector).astype(np.float64) for rank in range(world)),
                       np.zeros(vector.shape)).astype(vector.dtype)
        for rank in range(world):
            np.testing.assert_array_equal(channels.memory[f"result.{rank}.{i}"], expected)


def test_a_wait_polls_then_blocks_in_slices_checking_and_gives_up_at_its_timeout():
    semaphore = multiprocessing.get_context("spawn").Semaphore(0)
    checks = []
    started = time.monotonic()
    assert not acquire(semaphore, 0.3, lambda: checks.append(1), slice_seconds=0.05)
    assert 0.3 <= time.monotonic() - started < 2.0 and len(checks) >= 3

    def peer_gone():
        raise ParallelError("gone")

    with pytest.raises(ParallelError, match="gone"):  # a check that raises ends the wait at once
        acquire(semaphore, None, peer_gone)
    semaphore.release()
    assert acquire(semaphore, 0.0, peer_gone)


# -- the split gives one process's results --------------------------------------------------
@pytest.mark.parametrize("model_name", ["lenet5", "relu", "classic", "lenet5-1998"])
@pytest.mark.parametrize("workers, sizes", [(2, (64, 37)), (3, (30,))])
def test_split_batch_gives_the_one_process_logits_gradients_and_buffers_in_float64(model_name, workers, sizes):
    # lenet5 has BatchNorm (its statistics and backward sums cross the shares), the fused
    # BatchNorm → MaxPool → ReLU step and Dropout (its masks must be drawn as one process would).
    single, reference, split = (build_model(model_name, seed=3).to(np.float64) for _ in range(3))
    with DataParallel(split, workers) as data_parallel:
        for size in sizes:
            x, y = batch(model_name, size, seed=size, dtype=np.float64)
            loss, logits, _ = step(FastModel(single), x, y)
            step(reference, x, y)
            split_loss, split_logits, _ = step(data_parallel, x, y)
            assert data_parallel.worker_pids(), "the batch was split"
            assert split_loss == pytest.approx(loss, rel=1e-12)
            np.testing.assert_allclose(split_logits, logits, rtol=1e-12, atol=1e-12)
            assert_same_state(single, split, 1e-10)
            assert_same_state(reference, split, 1e-9)
    for (name, a), b in zip(single.named_modules(), split.modules()):
        if isinstance(a, ln.Dropout):  # rank 0 drew the whole batch's masks from the model's generator
            assert a.rng.bit_generator.state == b.rng.bit_generator.state, name


@pytest.mark.parametrize("kind", ["shift", "affine", "elastic"])
@pytest.mark.parametrize("workers", [2, 3])
def test_each_process_distorts_its_own_rows_as_one_process_distorts_the_batch(kind, workers):
    from lenet5.data.augment import Distortion

    single, split = build_model("lenet5", seed=4).to(np.float64), build_model("lenet5", seed=4).to(np.float64)
    x, y = batch("lenet5", 40, seed=9, dtype=np.float64)
    distortion = Distortion.draw(kind, 1.0, np.random.default_rng(6), fill=float(x.min()))
    undistorted = FastModel(build_model("lenet5", seed=4).to(np.float64)).forward(x)
    fast = FastModel(single)
    with DataParallel(split, workers, transform_kind=Distortion) as data_parallel:
        split_logits = data_parallel.forward(x, distortion=distortion)
        assert data_parallel.worker_pids(), "the batch was split"
        _, dlogits = SoftmaxCrossEntropy.value_and_grad(split_logits, y)
        data_parallel.backward(dlogits, input_grad=False)
    logits = fast.forward(x, distortion=distortion)
    fast.backward(SoftmaxCrossEntropy.value_and_grad(logits, y)[1], input_grad=False)
    assert not np.allclose(logits, undistorted, atol=1e-3)  # the distortion was applied
    # The elastic field's products differ in size between a share and the whole batch, so
    # they may round differently in float32; the other kinds read the same points exactly.
    tolerance = 1e-5 if kind == "elastic" else 1e-12
    np.testing.assert_allclose(split_logits, logits, rtol=tolerance, atol=tolerance)
    assert_same_state(single, split, max(tolerance, 1e-10))


def test_split_training_follows_one_process_training_over_adam_steps():
    # The parameters, buffers and masks rank 0 sends each step keep the workers in step with
    # the model. (In float64: Adam turns float32 rounding in a near-zero gradient into a
    # whole step of difference.)
    single, split = build_model("lenet5", seed=1).to(np.float64), build_model("lenet5", seed=1).to(np.float64)
    fast = FastModel(single)
    optimisers = Adam(single.parameters(), lr=1e-3), Adam(split.parameters(), lr=1e-3)
    with DataParallel(split, 2) as data_parallel:
        for seed in range(5):
            x, y = batch("lenet5", 48, seed=seed, dtype=np.float64)
            for optimiser in optimisers:
                optimiser.zero_grad()
            step(fast, x, y)
            step(data_parallel, x, y)
            for optimiser in optimisers:
                optimiser.step()
    for (name, p), q in zip(single.named_parameters(), split.parameters()):
        np.testing.assert_allclose(q.value, p.value, rtol=1e-9, atol=1e-12, err_msg=name)
    assert_same_state(single, split, 1e-9)


def test_gradients_add_to_what_the_parameters_held_and_the_input_gradient_is_gathered():
    single, split = build_model("lenet5", seed=2).to(np.float64), build_model("lenet5", seed=2).to(np.float64)
    for parameter in single.parameters() + split.parameters():
        parameter.grad += 1.0
    x, y = batch("lenet5", 32, dtype=np.float64)
    _, _, dx = step(FastModel(single), x, y, input_grad=True)
    with DataParallel(split, 2) as data_parallel:
        _, _, split_dx = step(data_parallel, x, y, input_grad=True)
    np.testing.assert_allclose(split_dx, dx, rtol=1e-10, atol=1e-10 * np.abs(dx).max())
    assert_same_state(single, split, 1e-10)


def test_eval_mode_batchnorm_and_changed_buffers_are_sent_to_the_workers():
    single, split = build_model("lenet5", seed=4), build_model("lenet5", seed=4)
    x, y = batch("lenet5", 40)
    with DataParallel(split, 2) as data_parallel:
        step(FastModel(single), x, y)
        step(data_parallel, x, y)  # the workers start with the model in training mode
        for model in (single, split):
            model.eval()
            model.bn1.running_mean[:] = 0.5
            for parameter in model.parameters():
                parameter.zero_grad()
        step(FastModel(single), x, y)
        step(data_parallel, x, y)
    assert_same_state(single, split, 1e-5)


def test_converting_the_model_restarts_the_workers_with_the_new_arrays():
    single, split = build_model("relu", seed=5), build_model("relu", seed=5)
    x, y = batch("relu", 16)
    with DataParallel(split, 2) as data_parallel:
        step(FastModel(single), x, y)
        step(data_parallel, x, y)
        first = data_parallel.worker_pids()
        for model in (single, split):
            model.to(np.float64)
            for parameter in model.parameters():
                parameter.zero_grad()
        step(FastModel(single), x.astype(np.float64), y)
        step(data_parallel, x.astype(np.float64), y)
        assert data_parallel.worker_pids() != first
    for (name, p), q in zip(single.named_parameters(), split.parameters()):
        assert q.grad.dtype == np.float64
        np.testing.assert_allclose(q.grad, p.grad, rtol=1e-10, atol=1e-10 * np.abs(p.grad).max(), err_msg=name)


@pytest.mark.parametrize("size, batch_size", [(1000, 256), (1000, 64), (130, 64), (64, 64), (5, 2)])
def test_predict_logits_equal_one_process_bit_for_bit(size, batch_size):
    model = build_model("lenet5", seed=5)
    x, y = batch("lenet5", size, seed=1)
    with DataParallel(model, 2) as data_parallel:
        logits = data_parallel.predict_logits(x, batch_size)
        assert model.training  # predicting leaves the model's mode alone
        np.testing.assert_array_equal(data_parallel.predict(x, batch_size), FastModel(model).predict(x, batch_size))
        assert data_parallel.accuracy(x, y, batch_size) == FastModel(model).accuracy(x, y, batch_size)
    np.testing.assert_array_equal(logits, FastModel(model).predict_logits(x, batch_size))


def test_predictions_larger_than_the_shared_areas_run_in_rounds(monkeypatch):
    monkeypatch.setattr(data_parallel_module, "SHARE_BYTES", 1)  # one batch per process per round
    model = build_model("relu", seed=6)
    x, _ = batch("relu", 300, seed=2)
    with DataParallel(model, 3) as split:
        np.testing.assert_array_equal(split.predict_logits(x, 32), FastModel(model).predict_logits(x, 32))


def test_a_batch_larger_than_the_shared_areas_restarts_the_workers_with_larger_ones(monkeypatch):
    monkeypatch.setattr(data_parallel_module, "SHARE_BYTES", 1)  # areas sized to the first call
    single, split = build_model("relu", seed=7), build_model("relu", seed=7)
    pids = []
    with DataParallel(split, 2) as engine:
        for size in (8, 40):
            x, y = batch("relu", size, seed=size)
            step(FastModel(single), x, y)
            step(engine, x, y)
            pids.append(engine.worker_pids())
    assert pids[0] != pids[1]
    assert_same_state(single, split, 1e-5)


def test_an_input_the_model_refuses_raises_its_own_error_and_the_next_call_starts_afresh():
    model = build_model("relu", seed=0)
    with DataParallel(model, 2) as split:
        with pytest.raises(ValueError, match="expected input of shape"):
            split.forward(np.zeros((16, 3, 32, 32), np.float32))
        assert not split.worker_pids()
        step(split, *batch("relu", 16))


def test_a_small_batch_runs_in_this_process_alone():
    model = build_model("relu", seed=0)
    with DataParallel(model, 2) as data_parallel:
        step(data_parallel, *batch("relu", 3))
        data_parallel.predict_logits(batch("relu", 7)[0], 8)  # fewer batches than processes
        assert not data_parallel.worker_pids()
    with DataParallel(model, 1) as data_parallel:
        step(data_parallel, *batch("relu", 64))
        assert not data_parallel.worker_pids()


# -- workers that fail, die or stall ------------------------------------------------------
class FailsInWorkers(ln.Module):
    """Raises in every process but the one that built it: a worker's error must reach the caller."""

    def __init__(self):
        super().__init__()
        self.home = os.getpid()

    def forward(self, x):
        if os.getpid() != self.home:
            raise ValueError("broken share")
        return x

    def backward(self, dout):
        return dout


def test_a_worker_error_is_raised_here_with_its_message_and_the_workers_stop():
    model = ln.Sequential(FailsInWorkers(), ln.Flatten(), ln.Dense(1024, 10, rng=0))
    x, y = batch("relu", 16)
    data_parallel = DataParallel(model, 3)
    step(data_parallel, x[:5], y[:5])  # too small to split: runs here, no error
    with pytest.raises(ParallelError, match=r"^data-parallel worker [12] \(pid \d+\) failed: "
                       r"ValueError: broken share \(at .*test_parallel.py:\d+ in forward\)$") as raised:
        data_parallel.forward(x)
    assert not data_parallel.worker_pids()
    assert reaped(int(re.search(r"pid (\d+)", str(raised.value)).group(1)))
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("lenet5-worker")]


@pytest.mark.parametrize("signal_number", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_worker_is_reported_instead_of_waited_for(signal_number):
    model = build_model("relu", seed=0)
    x, y = batch("relu", 16)
    previous = signal.signal(signal.SIGTERM, lambda *_: None)  # a trainer's handler, say: not the workers'
    try:
        with DataParallel(model, 2) as split:
            step(split, x, y)
            pid = split.worker_pids()[0]
            os.kill(pid, signal_number)
            with pytest.raises(ParallelError, match=rf"^data-parallel worker 1 \(pid {pid}\) exited unexpectedly "
                                                    rf"\(killed by {signal_number.name}\)$"):
                step(split, x, y)
            assert reaped(pid)
            step(split, x, y)  # new workers
            assert split.worker_pids()[0] != pid
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_stopped_worker_is_reported_within_the_timeout_and_the_workers_are_stopped():
    model = build_model("relu", seed=0)
    x, y = batch("relu", 16)
    with DataParallel(model, 3, timeout=2.0) as split:
        step(split, x, y)
        pids = split.worker_pids()
        os.kill(pids[1], signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(ParallelError, match=rf"^data-parallel worker 2 \(pid {pids[1]}\) did not answer within 2 s$"):
                step(split, x, y)
            assert time.monotonic() - started < 5.0
        finally:
            with contextlib.suppress(ProcessLookupError):  # in case it was not killed
                os.kill(pids[1], signal.SIGCONT)
        assert not split.worker_pids() and all(reaped(pid) for pid in pids)


def test_close_reaps_the_workers():
    model = build_model("relu", seed=0)
    data_parallel = DataParallel(model, 3)
    step(data_parallel, *batch("relu", 16))
    pids = data_parallel.worker_pids()
    data_parallel.close()
    assert all(reaped(pid) for pid in pids)
    data_parallel.close()  # twice is fine


ORPHAN = """
import os, sys
import numpy as np
from lenet5.fast.parallel import DataParallel
from lenet5.models import build_model
if __name__ == "__main__":
    split = DataParallel(build_model("relu"), 3)
    split.forward(np.zeros((16, 1, 32, 32), np.float32))
    print(*split.worker_pids(), flush=True)
    os._exit(0)  # dies without closing anything
"""


def test_workers_whose_parent_dies_exit_by_themselves(tmp_path):
    script = tmp_path / "orphan.py"
    script.write_text(ORPHAN)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    pids = [int(pid) for pid in result.stdout.split()]
    assert len(pids) == 2, result.stderr
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_running(pid) for pid in pids):
        time.sleep(0.1)
    assert not any(_running(pid) for pid in pids)


def _running(pid) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except FileNotFoundError:
        return False


# -- the processes' settings ------------------------------------------------------------------
class Probe(ln.Module):
    """Records BLAS's thread count in the process that built it; in a worker, raises with
    what the worker's setup should be: BLAS on one thread, SIGINT ignored."""

    def __init__(self):
        super().__init__()
        self.home, self.seen = os.getpid(), None

    def forward(self, x):
        if os.getpid() == self.home:
            self.seen = current_blas_threads()
            return x
        raise RuntimeError(f"threads={current_blas_threads()} OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')} "
                           f"SIGINT ignored={signal.getsignal(signal.SIGINT) is signal.SIG_IGN}")

    def backward(self, dout):
        return dout


def test_blas_runs_on_one_thread_in_every_process_during_a_call_and_this_process_gets_its_own_back():
    probe = Probe()
    model = ln.Sequential(probe, ln.Flatten(), ln.Dense(1024, 10, rng=0))
    before, environment = current_blas_threads(), dict(os.environ)
    with DataParallel(model, 2) as split:
        with pytest.raises(ParallelError) as raised:
            split.forward(batch("relu", 16)[0])
    expected = "threads=1" if threads_available() else "threads=None"
    assert f"{expected} OPENBLAS_NUM_THREADS=1 SIGINT ignored=True" in str(raised.value)
    assert probe.seen == (1 if threads_available() else None)
    assert current_blas_threads() == before and dict(os.environ) == environment


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2", None])
def test_workers_must_be_a_positive_integer(workers):
    with pytest.raises(ValueError, match=r"^DataParallel: workers must be a positive integer, found .*$"):
        DataParallel(build_model("relu"), workers)


@pytest.mark.parametrize("timeout", [0, -1.0, float("inf"), "10", None])
def test_timeout_must_be_a_positive_number(timeout):
    with pytest.raises(ValueError, match=r"^DataParallel: timeout must be a positive number of seconds"):
        DataParallel(build_model("relu"), 2, timeout=timeout)


def test_shared_memory_that_cannot_be_allocated_is_a_one_line_parallel_error(monkeypatch):
    import errno

    from lenet5.fast.parallel import pool

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pool, "Channels", full)
    model = build_model("relu", seed=0)
    with DataParallel(model, workers=2) as data_parallel:
        with pytest.raises(ParallelError, match="cannot allocate shared memory.*No space left.*--workers 1"):
            data_parallel.forward(np.zeros((8, 1, 32, 32), np.float32))
