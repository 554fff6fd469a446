"""A run directory: what `lenet5 train` writes into it, and how the other commands read it back.

    model.npz / model.json    the final weights and what they are (architecture, metrics...)
    checkpoint.npz            the training state after each epoch, and on Ctrl-C or SIGTERM
    history.csv / .json       one row per epoch
    metrics.json              the final test metrics, `test_accuracy` among them

Two runs never share a directory: a new run refuses one that holds a run unless told to
`overwrite` it, and `resume` needs the checkpoint.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from .errors import Lenet5Error
from .fileio import atomic_write_text

CHECKPOINT = "checkpoint.npz"
MODEL = "model.npz"
RUN_FILES = (CHECKPOINT, MODEL, "model.json", "history.csv", "history.json", "metrics.json")
HISTORY_COLUMNS = ("epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy", "seconds", "images_per_second")


class RunDirError(Lenet5Error):
    """A run directory that cannot be used: unwritable, already taken, or not a run."""


def prepare_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Create the run directory, refusing to mix two runs in one."""
    run_dir = Path(run_dir)
    if resume:
        if not (run_dir / CHECKPOINT).is_file():
            raise RunDirError(f"cannot resume: {run_dir} holds no {CHECKPOINT}")
        return
    if (run_dir / CHECKPOINT).exists() or (run_dir / MODEL).exists():
        if not overwrite:
            raise RunDirError(
                f"{run_dir} already holds a run; use --resume to continue it, --overwrite to replace it, "
                "or --out to choose another directory"
            )
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise RunDirError(f"cannot write to run directory {run_dir}: {error.strerror or error}") from None


def write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """history.csv (blank where a value is None) and history.json, one row per epoch."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in HISTORY_COLUMNS})
    atomic_write_text(Path(run_dir) / "history.csv", buffer.getvalue())
    atomic_write_text(Path(run_dir) / "history.json", json.dumps(history, indent=2) + "\n")


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> None:
    atomic_write_text(Path(run_dir) / "metrics.json", json.dumps(metrics, indent=2) + "\n")


def load_run(run_dir: Path):
    """(model in eval mode, metadata) of a finished run; a one-line error for anything else."""
    from .serialization import load_model

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: no such run directory")
    if not (run_dir / MODEL).is_file():
        hint = " (it has a checkpoint: finish it with `lenet5 train --out DIR --resume`)" \
            if (run_dir / CHECKPOINT).is_file() else ""
        raise RunDirError(f"{run_dir}: no {MODEL}, not a finished lenet5 run{hint}")
    return load_model(run_dir)


def preprocessing_metadata(model_name: str, mean: float, std: float) -> dict[str, Any]:
    """What a run's files say about its input: the model's preprocessing and the dataset's
    pixel statistics, so `preprocess_like` can prepare new images the same way."""
    from .models import get_spec

    prep = get_spec(model_name).preprocessing
    return {"method": prep.method, "pad": prep.pad, "mean": mean, "std": std}


def preprocess_like(images_uint8: np.ndarray, metadata: dict) -> np.ndarray:
    """Raw uint8 images (N, H, W) prepared as the run's model was trained on them."""
    from .data import preprocess

    prep = metadata["preprocessing"]
    return preprocess(images_uint8, method=prep["method"], pad=prep["pad"],
                      mean=prep.get("mean"), std=prep.get("std"))
