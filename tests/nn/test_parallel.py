"""DataParallel: a batch split over forked processes gives the one-process gradients and logits."""

import os
import signal

import numpy as np
import pytest

from lenet5.models import build_model
from lenet5.nn import Adam, DataParallel, Dense, Flatten, Module, ParallelError, Sequential, SoftmaxCrossEntropy, blas, parallel

pytestmark = pytest.mark.skipif(not parallel.supported(), reason="data parallelism needs x86-64 Linux")

SHAPES = {"lenet5": (1, 28, 28), "relu": (1, 32, 32), "classic": (1, 28, 28), "lenet5-1998": (1, 32, 32)}


def batch(model_name, size, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((size,) + SHAPES[model_name]).astype(dtype)
    return x, rng.integers(0, 10, size)


def one_process_step(model, x, y):
    logits = model.forward(x)
    loss, dlogits = SoftmaxCrossEntropy.value_and_grad(logits, y)
    model.backward(dlogits, input_grad=False)
    return loss, logits


def assert_same_state(model, other, rtol):
    for (name, p), q in zip(model.named_parameters(), other.parameters()):
        np.testing.assert_allclose(q.grad, p.grad, rtol=rtol, atol=rtol * np.abs(p.grad).max(), err_msg=name)
    for (name, a), (_, b) in zip(model.named_buffers(), other.named_buffers()):
        np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol, err_msg=name)


@pytest.mark.parametrize("model_name", ["lenet5", "relu", "classic", "lenet5-1998"])
@pytest.mark.parametrize("size, workers", [(64, 2), (37, 2), (30, 3)])
def test_split_batch_gives_the_one_process_gradients_in_float64(model_name, size, workers):
    # lenet5 has BatchNorm (its statistics and backward sums cross the shares), the fused
    # BatchNorm → MaxPool → ReLU step and Dropout (its masks must be drawn as one process would).
    single, split = build_model(model_name, seed=3).to(np.float64), build_model(model_name, seed=3).to(np.float64)
    x, y = batch(model_name, size, dtype=np.float64)
    loss, logits = one_process_step(single, x, y)
    with DataParallel(split, workers) as data_parallel:
        split_loss, split_logits = data_parallel.train_step(x, y)
    assert split_loss == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(split_logits, logits, rtol=1e-12, atol=1e-12)
    assert_same_state(single, split, 1e-10)


def test_split_training_follows_one_process_training_over_steps():
    # Several optimiser steps: the parameters, BatchNorm buffers and Dropout generators that
    # rank 0 sends each step keep the workers in step with the model. (In float64: Adam
    # turns float32 rounding in a near-zero gradient into a whole step of difference.)
    single, split = build_model("lenet5", seed=1).to(np.float64), build_model("lenet5", seed=1).to(np.float64)
    optimisers = Adam(single.parameters(), lr=1e-3), Adam(split.parameters(), lr=1e-3)
    with DataParallel(split, 2) as data_parallel:
        for step in range(5):
            x, y = batch("lenet5", 48, seed=step, dtype=np.float64)
            for optimiser in optimisers:
                optimiser.zero_grad()
            one_process_step(single, x, y)
            data_parallel.train_step(x, y)
            for optimiser in optimisers:
                optimiser.step()
    for (name, p), q in zip(single.named_parameters(), split.parameters()):
        np.testing.assert_allclose(q.value, p.value, rtol=1e-9, atol=1e-12, err_msg=name)
    assert_same_state(single, split, 1e-9)
    assert single.dropout1.rng.bit_generator.state == split.dropout1.rng.bit_generator.state


def test_gradients_accumulate_onto_what_the_parameters_held():
    model, reference = build_model("relu", seed=2), build_model("relu", seed=2)
    x, y = batch("relu", 32)
    for parameter in model.parameters() + reference.parameters():
        parameter.grad += 1.0
    one_process_step(reference, x, y)
    with DataParallel(model, 2) as data_parallel:
        data_parallel.train_step(x, y)
    assert_same_state(reference, model, 1e-5)


def test_eval_mode_batchnorm_is_sent_to_the_workers():
    single, split = build_model("lenet5", seed=4), build_model("lenet5", seed=4)
    for model in (single, split):
        model.eval()
        model.bn1.running_mean[:] = 0.5
    x, y = batch("lenet5", 40)
    one_process_step(single, x, y)
    with DataParallel(split, 2) as data_parallel:
        data_parallel.train_step(x, y)
    assert_same_state(single, split, 1e-5)


@pytest.mark.parametrize("size, batch_size", [(1000, 256), (1000, 64), (130, 64), (64, 64), (5, 2)])
def test_predict_logits_equal_one_process_bit_for_bit(size, batch_size):
    model = build_model("lenet5", seed=5)
    x, _ = batch("lenet5", size, seed=1)
    with DataParallel(model, 2) as data_parallel:
        logits = data_parallel.predict_logits(x, batch_size)
        assert model.training  # predicting leaves the model's mode alone
        np.testing.assert_array_equal(data_parallel.predict(x, batch_size), model.predict(x, batch_size))
    np.testing.assert_array_equal(logits, model.predict_logits(x, batch_size))


def test_a_small_batch_runs_in_this_process_alone():
    model = build_model("relu", seed=0)
    x, y = batch("relu", 3)
    with DataParallel(model, 2) as data_parallel:
        data_parallel.train_step(x, y)
        assert data_parallel._pool is None


class FailsInWorkers(Module):
    """Raises in every process but rank 0: a worker's error must reach the caller."""

    def _forward(self, x):
        if parallel.batch_share(x.shape[-1])[1] > 0:
            raise ValueError("broken share")
        return x

    def _backward(self, dout):
        return dout

    def output_shape(self, input_shape):
        return input_shape


def test_a_worker_error_is_raised_here_with_its_message_and_the_workers_stop():
    model = Sequential(FailsInWorkers(), Flatten(), Dense(1024, 10, rng=0))
    x, y = batch("relu", 16)
    data_parallel = DataParallel(model, 2)
    data_parallel.train_step(x[:3], y[:3])  # too small to split: runs here, no error
    with pytest.raises(ParallelError, match=r"^data-parallel worker 1 failed: ValueError: broken share$"):
        data_parallel.train_step(x, y)
    assert data_parallel._pool is None  # stopped; a next call would fork new workers


def test_a_killed_worker_is_reported_instead_of_waited_for():
    model = build_model("relu", seed=0)
    x, y = batch("relu", 16)
    with DataParallel(model, 2) as data_parallel:
        data_parallel.train_step(x, y)
        pid = data_parallel._pool.pids[0]
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(ParallelError, match=rf"worker 1 \(pid {pid}\) exited unexpectedly"):
            for _ in range(3):  # the first call may be posted before the kernel reaps it
                data_parallel.train_step(x, y)
        data_parallel.train_step(x, y)  # new workers


def test_close_reaps_the_workers():
    model = build_model("relu", seed=0)
    data_parallel = DataParallel(model, 3)
    data_parallel.train_step(*batch("relu", 16))
    pids = list(data_parallel._pool.pids)
    data_parallel.close()
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def test_blas_threads_are_this_process_s_own_again_after_a_call():
    before = blas.get_threads()
    model = build_model("relu", seed=0)
    with DataParallel(model, 2) as data_parallel:
        data_parallel.train_step(*batch("relu", 16))
        assert blas.get_threads() == before


def test_limited_threads_restores_the_count():
    if blas.get_threads() is None:
        pytest.skip("NumPy is not on OpenBLAS")
    before = blas.get_threads()
    with blas.limited_threads(1):
        assert blas.get_threads() == 1
    assert blas.get_threads() == before


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_workers_must_be_a_positive_integer(workers):
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        DataParallel(build_model("relu"), workers)
