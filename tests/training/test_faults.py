"""Fault injection: SIGKILL mid-run, a full disk, Ctrl-C; nothing is lost or half-written."""

import random
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lenet5.files.weights import load_arrays

ARGS = ["train", "--model", "relu", "--train-limit", "3000", "--validation", "300", "--test-limit", "300",
        "--epochs", "5", "--batch-size", "64", "--optimizer", "momentum", "--seed", "3", "--no-progress"]


def command(out, mnist_dir, *extra):
    return [sys.executable, "-m", "lenet5", *ARGS, "--out", str(out), "--data-dir", str(mnist_dir), *extra]


def weights(run_dir):
    arrays, metadata = load_arrays(run_dir / "model.npz", kind="model")
    return arrays, metadata


def no_temporary_files(run_dir):
    return not [p.name for p in run_dir.iterdir() if p.name.startswith(".")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, mnist_dir):
    run_dir = tmp_path_factory.mktemp("faults") / "reference"
    subprocess.run(command(run_dir, mnist_dir), check=True, capture_output=True, timeout=600)
    return run_dir


@pytest.mark.parametrize("attempt", range(3))
def test_sigkill_at_a_random_moment_then_resume_is_bit_identical(tmp_path, mnist_dir, reference, attempt):
    run_dir = tmp_path / "killed"
    delay = random.Random(attempt).uniform(1.0, 4.0)
    process = subprocess.Popen(command(run_dir, mnist_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
    if (run_dir / "checkpoint.npz").exists():
        load_arrays(run_dir / "checkpoint.npz", kind="checkpoint")  # whole, never half-written
        resume = command(run_dir, mnist_dir, "--resume")
    else:  # killed before the first epoch ended: nothing to resume, start again
        resume = command(run_dir, mnist_dir, "--overwrite")
    result = subprocess.run(resume, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    ours, ours_meta = weights(run_dir)
    theirs, theirs_meta = weights(reference)
    assert ours.keys() == theirs.keys()
    for name in theirs:
        assert np.array_equal(ours[name], theirs[name]), f"{name} differs after a kill at {delay:.2f}s"
    assert ours_meta["metrics"]["test_accuracy"] == theirs_meta["metrics"]["test_accuracy"]
    assert no_temporary_files(run_dir)


def test_sigint_saves_a_checkpoint_mid_epoch_and_resume_is_bit_identical(tmp_path, mnist_dir, reference):
    run_dir = tmp_path / "interrupted"
    process = subprocess.Popen(command(run_dir, mnist_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run_dir / "checkpoint.npz").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.15)  # into the second epoch
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "checkpoint saved" in stderr and "--resume" in stderr
    result = subprocess.run(command(run_dir, mnist_dir, "--resume"), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    ours, _ = weights(run_dir)
    theirs, _ = weights(reference)
    assert all(np.array_equal(ours[k], theirs[k]) for k in theirs)


def _limit_file_size(limit):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_full_disk_stops_training_with_a_clear_message_and_keeps_the_last_checkpoint(tmp_path, mnist_dir):
    run_dir = tmp_path / "full"
    first = command(run_dir, mnist_dir)
    first[first.index("--epochs") + 1] = "2"
    subprocess.run(first, check=True, capture_output=True, timeout=600)
    before = (run_dir / "checkpoint.npz").read_bytes()
    (run_dir / "model.npz").unlink()
    result = subprocess.run(command(run_dir, mnist_dir, "--resume", "--epochs", "4"),
                            capture_output=True, text=True, timeout=600, preexec_fn=_limit_file_size(64 * 1024))
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert "cannot write checkpoint" in message and "the last good checkpoint is kept" in message
    assert (run_dir / "checkpoint.npz").read_bytes() == before
    assert no_temporary_files(run_dir)
    resumed = subprocess.run(command(run_dir, mnist_dir, "--resume", "--epochs", "4"),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0 and "test accuracy" in resumed.stdout
