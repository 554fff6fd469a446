"""A run directory: what `lenet5 train` writes into it, and how the other commands read it back.

    model.npz / model.json    the final weights and what they are (architecture, metrics...)
    checkpoint.npz            the training state after each epoch, and on Ctrl-C or SIGTERM
    history.csv / .json       one row per epoch
    metrics.json              the final test metrics, `test_accuracy` among them
    .lock                     while a run trains: its lock, holding the process id

Two runs never share a directory: `claim_run_dir` locks it for one process at a time, a new
run refuses one that holds a run unless told to `overwrite` it, and `resume` needs the
checkpoint. An overwritten run is not deleted up front: its files wait in `.previous-run/`
until the new run has written its first checkpoint, and come back if it fails before that.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import Lenet5Error
from .fileio import atomic_write_text, check_destination, os_reason, remove_stale_temporaries

CHECKPOINT = "checkpoint.npz"
MODEL = "model.npz"
RUN_FILES = (CHECKPOINT, MODEL, "model.json", "history.csv", "history.json", "metrics.json")
# What `lenet5 export` writes into a run by default: set aside with the run it was made from
# when that run is overwritten, so no export outlives its weights.
EXPORTS = ("model.onnx", "model-int8.onnx")
REPORT = "report"
HISTORY_COLUMNS = ("epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy",
                   "seconds", "images_per_second")

HISTORY, METRICS = "history.json", "metrics.json"

LOCK = ".lock"
# An overwritten run's files (RUN_FILES and its report), kept until the new run's first checkpoint.
PREVIOUS_RUN = ".previous-run"
# Files on their way aside or back; whatever is found here after a crash goes back.
PREVIOUS_RUN_MOVING = ".previous-run.moving"


class RunDirError(Lenet5Error):
    """A run directory that cannot be used: unwritable, already taken, or not a run."""


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
    with _locked(run_dir):
        try:
            settle_previous_run(run_dir)
            remove_stale_temporaries(run_dir, RUN_FILES + EXPORTS)
            check_run_dir(run_dir, resume=resume, overwrite=overwrite)
            yield run_dir
        finally:
            settle_previous_run(run_dir)


@contextlib.contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
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
            raise RunDirError(f"{run_dir} is in use by {holder} (another lenet5 train); wait for it to end "
                              "or choose another --out") from None
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


def holds_a_run(run_dir: Path) -> bool:
    """Whether `run_dir` holds a run: its checkpoint or its model, finished or not."""
    return (run_dir / CHECKPOINT).exists() or (run_dir / MODEL).exists()


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


# history.json as `lenet5 report` reads it: a few hundred bytes an epoch.
MAX_HISTORY_BYTES = 16 * 1024 * 1024
HISTORY_NUMBERS = ("lr", "loss", "accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy", "seconds",
                   "images_per_second")


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of RUN_DIR/history.json, checked; [] when there is none.

    Each row is an object whose `epoch` is a positive int and whose other columns are numbers
    or null: anything else is a one-line RunDirError naming the file, the row and the field.
    """
    path = Path(run_dir) / HISTORY
    if not os.path.lexists(path):
        return []
    try:
        if not path.is_file():
            raise RunDirError(f"{path}: not a regular file")
        size = path.stat().st_size
        if size > MAX_HISTORY_BYTES:
            raise RunDirError(f"{path}: refused, {size:,} bytes (a history holds at most {MAX_HISTORY_BYTES:,})")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        why = os_reason(error) if isinstance(error, OSError) else "not UTF-8 text"
        raise RunDirError(f"cannot read {path}: {why}") from None
    try:
        history = json.loads(text)
    except RecursionError:
        raise RunDirError(f"{path}: nested too deeply to be a history") from None
    except ValueError as error:
        raise RunDirError(f"{path}: not valid JSON ({str(error)[:120]})") from None
    if not isinstance(history, list):
        raise RunDirError(f"{path}: must be a list of epoch rows, found {_json_type(history)}")
    for number, row in enumerate(history, start=1):
        where = f"{path}: row {number}"
        if not isinstance(row, dict):
            raise RunDirError(f"{where} must be an object, found {_json_type(row)}")
        epoch = row.get("epoch")
        if not _is_int(epoch) or epoch < 1:
            raise RunDirError(f"{where}, field 'epoch' must be an int >= 1, found {_shown(epoch)}")
        for field in HISTORY_NUMBERS:
            value = row.get(field)
            if value is not None and not (_is_number(value) and math.isfinite(value)):
                raise RunDirError(f"{where}, field {field!r} must be a finite number or null, found {_shown(value)}")
    return history


def load_run(run_dir: Path):
    """(model in eval mode, metadata) of a finished run; a one-line error for anything else.

    Besides what `load_model` checks, the metadata the commands use is checked here, each
    problem named with its file and field: the preprocessing (`check_preprocessing`, which must
    also give the model's input size) and `class_names` (one string per output of the model).
    """
    from .serialization import load_model

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: no such run directory")
    if not (run_dir / MODEL).is_file():
        hint = " (it has a checkpoint: finish it with `lenet5 train --out DIR --resume`)" \
            if (run_dir / CHECKPOINT).is_file() else ""
        raise RunDirError(f"{run_dir}: no {MODEL}, not a finished lenet5 run{hint}")
    model, metadata = load_model(run_dir)
    where = str(run_dir / MODEL)
    prep = check_preprocessing(metadata, where)
    side = model.input_shape[-1] - 2 * prep["pad"]
    if side != DIGIT_SIDE:
        raise RunDirError(f"{where}: metadata field 'preprocessing.pad' is {prep['pad']}, but architecture "
                          f"{metadata['architecture']!r} takes {model.input_shape[-1]}-pixel inputs, so "
                          f"{DIGIT_SIDE}-pixel images need pad {(model.input_shape[-1] - DIGIT_SIDE) // 2}")
    if "class_names" in metadata:
        names, classes = metadata["class_names"], _outputs(model)
        if not (isinstance(names, list) and len(names) == classes and all(isinstance(n, str) for n in names)):
            raise RunDirError(f"{where}: metadata field 'class_names' must be a list of {classes} strings "
                              f"(one per output), found {_shown(names)}")
    _probe(model, metadata, where)
    return model, metadata


def _probe(model, metadata: dict, where: str) -> None:
    """Refuse a model whose outputs are not finite, before any command uses it: a blank and an
    all-ink digit, the extremes of what it reads, through its preprocessing and the model.
    A model can still overflow on other inputs only; whatever runs it checks those too."""
    from .outputs import check_outputs

    extremes = np.zeros((2, DIGIT_SIDE, DIGIT_SIDE), np.uint8)
    extremes[1] = 255
    with np.errstate(all="ignore"):  # overflow is reported by check_outputs, in one line
        logits = model.predict_logits(preprocess_like(extremes, metadata))
    check_outputs(logits, "a blank and an all-ink image", where)


DIGIT_SIDE = 28  # the images a run's model reads: a dataset's, or predict's, 28×28
MAX_PAD = 64


def check_preprocessing(metadata: dict, where: str) -> dict[str, Any]:
    """The metadata's `preprocessing`, checked field by field; a RunDirError naming `where` and
    the field for anything `preprocess` could not use (or would use to build a huge array)."""
    from .data.preprocess import METHODS

    prep = metadata.get("preprocessing") if isinstance(metadata, dict) else None
    if not isinstance(prep, dict):
        raise RunDirError(f"{where}: metadata field 'preprocessing' must be an object, found {_shown(prep)}")
    method = prep.get("method")
    if not isinstance(method, str) or method not in METHODS:
        raise RunDirError(f"{where}: metadata field 'preprocessing.method' must be one of "
                          f"{', '.join(METHODS)}, found {_shown(method)}")
    pad = prep.get("pad")
    if not (_is_int(pad) and 0 <= pad <= MAX_PAD):
        raise RunDirError(f"{where}: metadata field 'preprocessing.pad' must be an int in 0..{MAX_PAD}, "
                          f"found {_shown(pad)}")
    for field in ("mean", "std"):
        value = prep.get(field)
        needed = method == "standardize"
        if (value is None and needed) or (value is not None and not (_is_number(value) and math.isfinite(value))):
            raise RunDirError(f"{where}: metadata field 'preprocessing.{field}' must be a finite number"
                              f"{'' if needed else ' or null'}, found {_shown(value)}")
    if method == "standardize" and not prep["std"] > 0:
        raise RunDirError(f"{where}: metadata field 'preprocessing.std' must be positive, found {prep['std']!r}")
    return prep


def _outputs(model) -> int:
    shape = model.input_shape
    for layer in model.layers:
        shape = layer.output_shape(shape)
    return int(np.prod(shape))


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _json_type(value) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
             int: "an int", float: "a number"}
    return names.get(type(value), type(value).__name__)


def _shown(value) -> str:
    """A value in an error message: short, whatever a crafted file put there."""
    if value is None:
        return "none"  # missing, or null
    text = json.dumps(value) if isinstance(value, (str, int, float, bool)) else _json_type(value)
    if isinstance(value, list):
        text = f"a list of {len(value)}"
    return text if len(text) <= 60 else text[:57] + "..."


def preprocessing_metadata(model_name: str, mean: float, std: float) -> dict[str, Any]:
    """What a run's files say about its input: the model's preprocessing and the dataset's
    pixel statistics, so `preprocess_like` can prepare new images the same way."""
    from .models import get_spec

    prep = get_spec(model_name).preprocessing
    return {"method": prep.method, "pad": prep.pad, "mean": mean, "std": std}


def preprocess_like(images_uint8: np.ndarray, metadata: dict) -> np.ndarray:
    """Raw uint8 images (N, H, W) prepared as the run's model was trained on them."""
    from .data import preprocess

    prep = check_preprocessing(metadata, "run metadata")
    return preprocess(images_uint8, method=prep["method"], pad=prep["pad"],
                      mean=prep.get("mean"), std=prep.get("std"))
