"""A finished run is never lost: --overwrite that fails, two trains on one directory, kills.

Each case asserts the exit code, one line on stderr without a traceback where an error is
expected, and that every file of the finished run is byte-identical afterwards.
"""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lenet5.errors import RunDirError
from lenet5.files.writing import remove_stale_temporaries
from lenet5.training.run_dir import PREVIOUS_RUN, PREVIOUS_RUN_MOVING, claim_run_dir, prepare_run_dir

from ..helpers.commands import assert_one_line_error, lenet5

TINY = ["--model", "relu", "--train-limit", "256", "--validation", "64", "--test-limit", "64", "--epochs", "1",
        "--batch-size", "32", "--augment", "none", "--no-progress"]


def snapshot(run_dir: Path) -> dict[str, bytes]:
    """Every file under the run directory, hidden ones too, by relative path."""
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, mnist_dir):
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    result = lenet5("train", *TINY, "--out", run_dir, "--data-dir", mnist_dir)
    assert result.returncode == 0, result.stderr
    return run_dir


@pytest.fixture
def old_run(finished_run, tmp_path):
    """A private copy of the finished run, and its bytes before the test touches it."""
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    return run_dir, snapshot(run_dir)


def test_a_finished_run_leaves_no_lock_or_hidden_file(old_run):
    run_dir, files = old_run
    assert sorted(files) == ["checkpoint.npz", "history.csv", "history.json", "metrics.json", "model.json",
                             "model.npz"]


def test_overwrite_with_a_bad_data_dir_keeps_the_old_run(old_run, tmp_path):
    run_dir, before = old_run
    result = lenet5("train", *TINY, "--out", run_dir, "--overwrite", "--data-dir", tmp_path / "typo")
    assert_one_line_error(result)
    assert snapshot(run_dir) == before


def test_overwrite_whose_loss_diverges_before_its_first_checkpoint_keeps_the_old_run(old_run, mnist_dir):
    run_dir, before = old_run
    result = lenet5("train", *TINY, "--out", run_dir, "--overwrite", "--optimizer", "sgd", "--lr", "1e30",
                    "--data-dir", mnist_dir)
    assert_one_line_error(result, "non-finite loss", "no checkpoint had been written yet")
    assert snapshot(run_dir) == before


def test_overwrite_that_succeeds_replaces_the_old_run_whole(old_run, mnist_dir):
    run_dir, before = old_run
    (run_dir / "report").mkdir()
    (run_dir / "report" / "index.html").write_text("the old run's report")
    result = lenet5("train", *TINY, "--seed", "5", "--out", run_dir, "--overwrite", "--data-dir", mnist_dir)
    assert result.returncode == 0, result.stderr
    after = snapshot(run_dir)
    assert sorted(after) == sorted(before)  # no lock, nothing kept aside, no old report
    assert after["model.npz"] != before["model.npz"]


@pytest.mark.parametrize("moved", ["all", "some"])
def test_a_run_killed_while_the_old_run_was_set_aside_gets_it_back(old_run, tmp_path, moved):
    """A kill between setting the old run aside and the first checkpoint, or half-way through
    the move itself: the next train on the directory puts the old files back first."""
    run_dir, before = old_run
    if moved == "all":
        prepare_run_dir(run_dir, resume=False, overwrite=True)
        assert not (run_dir / "model.npz").exists() and (run_dir / PREVIOUS_RUN / "model.npz").exists()
    else:
        (run_dir / PREVIOUS_RUN_MOVING).mkdir()
        for name in ("checkpoint.npz", "history.csv"):
            os.rename(run_dir / name, run_dir / PREVIOUS_RUN_MOVING / name)
    result = lenet5("train", *TINY, "--out", run_dir, "--overwrite", "--data-dir", tmp_path / "typo")
    assert_one_line_error(result)
    assert snapshot(run_dir) == before


def test_the_old_run_is_dropped_once_the_new_one_has_a_checkpoint(old_run):
    run_dir, _ = old_run
    prepare_run_dir(run_dir, resume=False, overwrite=True)
    (run_dir / "checkpoint.npz").write_bytes(b"the new run's first checkpoint")
    with claim_run_dir(run_dir, resume=True, overwrite=False):
        pass
    assert not (run_dir / PREVIOUS_RUN).exists()
    assert sorted(snapshot(run_dir)) == ["checkpoint.npz"]


def test_stale_temporary_files_of_atomic_writes_are_removed_when_a_run_starts(old_run, tmp_path):
    run_dir, before = old_run
    stale = [".checkpoint.npz.k3_x9qpa.tmp", ".model.npz.abcdefgh.tmp", ".history.json.0123abcd.tmp"]
    kept = {".notes.abcdefgh.tmp": b"not ours", "checkpoint.npz.abcdefgh.tmp": b"not hidden", "notes.txt": b"mine"}
    for name in stale:
        (run_dir / name).write_bytes(b"half a file")
    for name, data in kept.items():
        (run_dir / name).write_bytes(data)
    result = lenet5("train", *TINY, "--out", run_dir, "--overwrite", "--data-dir", tmp_path / "typo")
    assert_one_line_error(result)
    assert snapshot(run_dir) == {**before, **kept}


def test_remove_stale_temporaries_matches_only_the_atomic_write_pattern(tmp_path):
    names = [".model.npz.a1b2_c3d.tmp", ".model.npz.tmp", ".model.npz..tmp", ".model.json.abcdefgh.tmp",
             ".other.npz.abcdefgh.tmp", ".model.npz.ABCDEFGH.tmp"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    removed = remove_stale_temporaries(tmp_path, ["model.npz"])
    assert [p.name for p in removed] == [".model.npz.a1b2_c3d.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[1:])


HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from lenet5.training.run_dir import claim_run_dir
    with claim_run_dir(sys.argv[1], resume=False, overwrite=True):
        print("locked", flush=True)
        time.sleep(120)
""")


@pytest.fixture
def lock_holder():
    """Start a process that holds a run directory's lock; it is killed at the end."""
    processes = []

    def start(run_dir):
        process = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run_dir)], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        processes.append(process)
        assert process.stdout.readline() == "locked\n", process.stderr.read()
        return process

    yield start
    for process in processes:
        process.kill()
        process.wait()


@pytest.mark.parametrize("mode", ["--overwrite", "--resume", None])
def test_a_locked_run_directory_is_refused_with_the_holders_pid(old_run, mnist_dir, lock_holder, mode):
    run_dir, before = old_run
    holder = lock_holder(run_dir)
    result = lenet5("train", *TINY, "--out", run_dir, *([mode] if mode else []), "--data-dir", mnist_dir)
    assert_one_line_error(result, f"in use by process {holder.pid}", str(run_dir))
    holder.kill()  # the kernel releases the lock of a killed process: the directory is usable again
    holder.wait()
    assert {k: v for k, v in snapshot(run_dir).items() if k != ".lock"} == before
    with claim_run_dir(run_dir, resume=True, overwrite=False):
        pass
    assert snapshot(run_dir) == before


def test_the_lock_is_held_by_a_real_train_for_its_whole_run(tmp_path, mnist_dir):
    run_dir = tmp_path / "busy"
    first = subprocess.Popen([sys.executable, "-m", "lenet5", "train", *TINY, "--out", str(run_dir),
                              "--data-dir", str(mnist_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the lock file names its holder once it is taken
            if (run_dir / ".lock").is_file() and (run_dir / ".lock").read_text().strip() == str(first.pid):
                break
            time.sleep(0.01)
        first.send_signal(signal.SIGSTOP)  # so it cannot finish while the second one starts
        try:
            second = lenet5("train", *TINY, "--out", run_dir, "--data-dir", mnist_dir)
        finally:
            first.send_signal(signal.SIGCONT)
        assert_one_line_error(second, f"in use by process {first.pid}")
        _, stderr = first.communicate(timeout=120)
        assert first.returncode == 0, stderr
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert (run_dir / "model.npz").is_file() and not (run_dir / ".lock").exists()


def test_resume_of_a_directory_that_does_not_exist_creates_nothing(tmp_path):
    with pytest.raises(RunDirError, match="cannot resume"):
        with claim_run_dir(tmp_path / "missing", resume=True, overwrite=False):
            pass
    assert not (tmp_path / "missing").exists()
