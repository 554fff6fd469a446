"""Writing a run directory: the lock that keeps it to one `lenet5 train`, the overwrite that
can be undone, and the history and metrics files written after each epoch.

Two runs never share a directory: `claim_run_dir` locks it for one process at a time, a new
run refuses one that holds a run unless told to `overwrite` it, and `resume` needs the
checkpoint. An overwritten run is not deleted up front: its files wait in `.previous-run/`
until the new run has written its first checkpoint, and come back if it fails before that.
What the files are, and how a finished run is read back, is `lenet5.run.directory`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

from ..errors import RunDirError
from ..files.writing import atomic_write_text, check_destination, os_reason, remove_stale_temporaries
from ..run.directory import CHECKPOINT, EXPORTS, HISTORY, HISTORY_COLUMNS, METRICS, REPORT, RUN_FILES, holds_a_run

LOCK = ".lock"
# An overwritten run's files (RUN_FILES and its report), kept until the new run's first checkpoint.
PREVIOUS_RUN = ".previous-run"
# Files on their way aside or back; whatever is found here after a crash goes back.
PREVIOUS_RUN_MOVING = ".previous-run.moving"


@contextlib.contextmanager
def writing(what: str | Path) -> Iterator[None]:
    """Turn an OSError inside the block into a one-line RunDirError: "cannot write WHAT: why".

    The writes are atomic, so a file that could not be written keeps its old content (or
    stays absent); callers add what the user can do next.
    """
    try:
        yield
    except OSError as error:
        raise RunDirError(f"cannot write {what}: {os_reason(error)}") from None


@contextlib.contextmanager
def claim_run_dir(run_dir: Path, *, resume: bool, overwrite: bool) -> Iterator[Path]:
    """Hold the run directory for one `lenet5 train`, from its checks to its last file.

    Locks it (a second process gets a one-line error naming the holder), finishes what a
    killed run left (an overwrite half done, temporary files of its atomic writes), then checks
    that it can take this run, all before anything slow happens. On the way out the old run of
    an overwrite is dropped if the new run wrote a checkpoint, and put back otherwise.
    """
    run_dir = check_destination(run_dir, what="a run directory", folder=True, into=True)
    if resume and not run_dir.is_dir():
        raise RunDirError(f"cannot resume: {run_dir} holds no {CHECKPOINT}")
    with locked(run_dir):
        try:
            settle_previous_run(run_dir)
            remove_stale_temporaries(run_dir, RUN_FILES + EXPORTS)
            check_run_dir(run_dir, resume=resume, overwrite=overwrite)
            yield run_dir
        finally:
            settle_previous_run(run_dir)


@contextlib.contextmanager
def locked(run_dir: Path, holder_is: str = "another lenet5 train",
           hint: str = "choose another --out") -> Iterator[None]:
    """An exclusive `flock` on RUN_DIR/.lock for the duration of the block.

    flock, not a file whose existence is the lock: the kernel releases it when its process
    dies, however it dies, so a killed run never blocks the next one. The file is removed on
    release; whoever locks it checks that the file they locked is still the one at that name,
    so a process that opened it just before its removal cannot hold a lock nobody else sees.
    """
    try:
        import fcntl
    except ModuleNotFoundError:  # Windows has no flock: runs are not locked there
        yield
        return
    path = run_dir / LOCK
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirError(f"cannot write to run directory {run_dir}: {os_reason(error)}") from None
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as error:
            raise RunDirError(f"cannot write to run directory {run_dir}: {os_reason(error)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunDirError(f"{run_dir} is in use by {holder} ({holder_is}); wait for it to end "
                              f"or {hint}") from None
        except OSError as error:
            os.close(fd)
            raise RunDirError(f"cannot lock run directory {run_dir}: {error.strerror or error}") from None
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        os.close(fd)  # its holder removed it as it finished: lock the one there now
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # while still holding it: see the check above
        os.close(fd)


def _read_holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        return f"process {int(os.pread(fd, 32, 0).decode('ascii').strip())}"
    return "another process"  # it has not written its pid yet


def check_run_dir(run_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse a run directory that cannot take this run; changes nothing."""
    run_dir = Path(run_dir)
    if resume:
        if not (run_dir / CHECKPOINT).is_file():
            raise RunDirError(f"cannot resume: {run_dir} holds no {CHECKPOINT}")
        return
    if holds_a_run(run_dir) and not overwrite:
        raise RunDirError(
            f"{run_dir} already holds a run; use --resume to continue it, --overwrite to replace it, "
            "or --out to choose another directory"
        )


def prepare_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Create the run directory, refusing to mix two runs in one.

    With `overwrite`, an old run's files are moved into `.previous-run/`, not deleted: call it
    only once everything the new run needs has been checked, and `settle_previous_run` after
    the new run stops (`claim_run_dir` does).
    """
    run_dir = Path(run_dir)
    check_run_dir(run_dir, resume=resume, overwrite=overwrite)
    if resume:
        return
    settle_previous_run(run_dir)
    try:
        if holds_a_run(run_dir):
            _set_previous_run_aside(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise RunDirError(f"cannot write to run directory {run_dir}: {os_reason(error)}") from None


def _set_previous_run_aside(run_dir: Path) -> None:
    """Move the old run's files into `.previous-run/`, by renames (the bytes never change).

    They gather in `.previous-run.moving/`, renamed to `.previous-run/` once all are there, so a
    crash half-way is told apart from a finished move and undone by `settle_previous_run`.
    """
    moving = run_dir / PREVIOUS_RUN_MOVING
    moving.mkdir()
    for name in (*RUN_FILES, *EXPORTS, REPORT):
        if os.path.lexists(run_dir / name):
            os.rename(run_dir / name, moving / name)
    os.rename(moving, run_dir / PREVIOUS_RUN)


def settle_previous_run(run_dir: Path) -> None:
    """Finish an overwrite: drop the old run once the new one has a checkpoint, else put it back.

    Safe to call at any time and again after a crash: `.previous-run/` exists only between a
    completed move aside and this decision, so a checkpoint or model beside it is the new run's.
    """
    run_dir = Path(run_dir)
    aside, moving = run_dir / PREVIOUS_RUN, run_dir / PREVIOUS_RUN_MOVING
    try:
        if aside.is_dir():
            if holds_a_run(run_dir):
                shutil.rmtree(aside)
            else:
                os.rename(aside, moving)
        if moving.is_dir():
            for entry in moving.iterdir():
                os.replace(entry, run_dir / entry.name)
            moving.rmdir()
    except OSError as error:
        raise RunDirError(f"cannot settle the previous run kept in {run_dir}/{PREVIOUS_RUN}: "
                          f"{error.strerror or error}") from None


def write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """history.csv (blank where a value is None) and history.json, one row per epoch.

    A write that fails is a RunDirError naming the file and why; the file keeps its old content.
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in HISTORY_COLUMNS})
    for name, text in (("history.csv", buffer.getvalue()), (HISTORY, json.dumps(history, indent=2) + "\n")):
        with writing(Path(run_dir) / name):
            atomic_write_text(Path(run_dir) / name, text)


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> None:
    """metrics.json; a failed write is a RunDirError naming it and why."""
    with writing(Path(run_dir) / METRICS):
        atomic_write_text(Path(run_dir) / METRICS, json.dumps(metrics, indent=2) + "\n")
