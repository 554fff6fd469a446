"""The command line refuses a bad value when it parses it: exit code 2, one line on stderr
naming the option and what it allows, no traceback, nothing run."""

import subprocess
import sys

import pytest

from lenet5.run.engine import usable_cores

MOST_WORKERS = max(2, usable_cores())


@pytest.mark.parametrize("command, option, value, allowed", [
    ("train", "--seed", "-1", "an integer in 0.."),
    ("train", "--seed", "1.5", "an integer in 0.."),
    ("train", "--momentum", "1", "a number in [0, 1)"),
    ("train", "--momentum", "-0.1", "a number in [0, 1)"),
    ("train", "--weight-decay", "nan", "a number >= 0"),
    ("train", "--weight-decay", "-1e-4", "a number >= 0"),
    ("train", "--lr", "0", "a positive number"),
    ("train", "--lr", "inf", "a positive number"),
    ("train", "--epochs", "0", "a positive integer"),
    ("train", "--batch-size", "-8", "a positive integer"),
    ("train", "--train-limit", "0", "a positive integer"),
    ("train", "--test-limit", "-5", "a positive integer"),
    ("train", "--validation", "-1", "an integer >= 0"),
    ("train", "--augment-strength", "5", "a number in 0..4"),
    ("train", "--augment-strength", "nan", "a number in 0..4"),
    ("serve", "--workers", "1000", f"an integer in 1..{MOST_WORKERS}"),
    ("serve", "--workers", "0", f"an integer in 1..{MOST_WORKERS}"),
    ("serve", "--workers", "two", f"an integer in 1..{MOST_WORKERS}"),
    ("train", "--out", "", "a directory path"),
    ("gradcheck", "--entries", "0", "a positive integer"),
    ("gradcheck", "--batch-size", "-2", "a positive integer"),
    ("gradcheck", "--tolerance", "0", "a positive number"),
])
def test_a_bad_value_is_refused_in_one_line_when_parsed(tmp_path, command, option, value, allowed):
    out = ["--out", str(tmp_path / "run")] if command == "train" and option != "--out" else []
    done = subprocess.run([sys.executable, "-m", "lenet5", command, f"{option}={value}", *out],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert option in lines[0] and allowed in lines[0] and repr(value) in lines[0], lines[0]
    assert not (tmp_path / "run").exists() and done.stdout == ""


def test_auto_and_a_count_within_the_cores_are_accepted_as_serve_s_processes():
    from lenet5.cli.arguments import AUTO_WORKERS_MAX, worker_count

    assert worker_count("1") == 1 and worker_count(str(MOST_WORKERS)) == MOST_WORKERS
    assert worker_count("auto") == min(usable_cores(), AUTO_WORKERS_MAX)


@pytest.mark.parametrize("extra, message", [
    (["--batch-size", "1000000000"], "batch size 1000000000 is larger than the training set (200 images)"),
    (["--train-limit", "301"], "training needs at least 2 images, found 1"),
])
def test_a_batch_larger_than_the_training_set_or_a_one_image_set_is_refused_before_training(
        tmp_path, mnist_dir, extra, message):
    done = subprocess.run([sys.executable, "-m", "lenet5", "train", "--model", "relu", "--train-limit", "500",
                           "--validation", "300", "--test-limit", "100", "--epochs", "1", "--no-progress",
                           "--data-dir", str(mnist_dir), "--out", str(tmp_path / "run"), *extra],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and message in lines[0], done.stderr
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


def test_resume_refuses_settings_that_differ_from_the_run_s_own(tmp_path, mnist_dir):
    run = ["--data-dir", str(mnist_dir), "--model", "relu", "--train-limit", "300", "--validation", "100", "--test-limit", "50", "--epochs", "1",
           "--batch-size", "50", "--lr", "0.001", "--no-progress", "--out", str(tmp_path / "run")]

    def train(*extra):
        return subprocess.run([sys.executable, "-m", "lenet5", "train", *run, *extra],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)

    assert train().returncode == 0
    checkpoint = (tmp_path / "run" / "checkpoint.npz").read_bytes()
    done = train("--resume", "--model", "classic", "--lr", "0.5")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert "--model, --lr cannot change them (--epochs can)" in lines[0]
    assert (tmp_path / "run" / "checkpoint.npz").read_bytes() == checkpoint
    assert train("--resume", "--epochs", "2").returncode == 0  # the same settings again are no change
