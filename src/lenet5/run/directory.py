"""A run directory, as `lenet5 train` leaves it and every other command reads it:

    model.npz / model.json    the final weights and what they are (architecture, metrics...)
    checkpoint.npz            the training state after each epoch, and on Ctrl-C or SIGTERM
    history.csv / .json       one row per epoch
    metrics.json              the final test metrics, `test_accuracy` among them
    .lock                     while a run trains: its lock, holding the process id

Writing one (the lock, the overwrite that can be undone) is `lenet5.training.run_dir`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RunDirError
from ..files.json_fields import is_int, is_number, json_type, shown
from ..files.writing import os_reason
from .preprocessing import DIGIT_SIDE, check_preprocessing, preprocess_like

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


def holds_a_run(run_dir: Path) -> bool:
    """Whether `run_dir` holds a run: its checkpoint or its model, finished or not."""
    return (run_dir / CHECKPOINT).exists() or (run_dir / MODEL).exists()


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
        raise RunDirError(f"{path}: must be a list of epoch rows, found {json_type(history)}")
    for number, row in enumerate(history, start=1):
        where = f"{path}: row {number}"
        if not isinstance(row, dict):
            raise RunDirError(f"{where} must be an object, found {json_type(row)}")
        epoch = row.get("epoch")
        if not is_int(epoch) or epoch < 1:
            raise RunDirError(f"{where}, field 'epoch' must be an int >= 1, found {shown(epoch)}")
        for field in HISTORY_NUMBERS:
            value = row.get(field)
            if value is not None and not (is_number(value) and math.isfinite(value)):
                raise RunDirError(f"{where}, field {field!r} must be a finite number or null, found {shown(value)}")
    return history


def load_run(run_dir: Path):
    """(model in eval mode, metadata) of a finished run; a one-line error for anything else.

    Besides what `load_model` checks, the metadata the commands use is checked here, each
    problem named with its file and field: the preprocessing (`check_preprocessing`, which must
    also give the model's input size), `class_names` (one string per output of the model) and
    the loss it trained with (`hyperparameters.loss`, one its model accepts).
    """
    from ..files.weights import load_model

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
                              f"(one per output), found {shown(names)}")
    _check_loss(metadata, where)
    _probe(model, metadata, where)
    return model, metadata


def _check_loss(metadata: dict, where: str) -> None:
    """The loss the run trained with, which `evaluate` and `report` give its loss values in:
    one its model accepts (a run saved before runs chose one names none: its model's own)."""
    from ..zoo.models import get_spec

    spec = get_spec(metadata["architecture"])
    loss = spec.saved_loss(metadata.get("hyperparameters"))
    if loss not in spec.losses:
        raise RunDirError(f"{where}: metadata field 'hyperparameters.loss' must be {' or '.join(spec.losses)} "
                          f"for architecture {metadata['architecture']!r}, found {shown(loss)}")


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


def _outputs(model) -> int:
    shape = model.input_shape
    for layer in model.layers:
        shape = layer.output_shape(shape)
    return int(np.prod(shape))
