"""Model and checkpoint files: `.npz` arrays plus JSON metadata, never pickle.

Each file is one `.npz` whose arrays are the flat state dict and whose `__metadata__` entry
is UTF-8 JSON (as uint8), so arrays and metadata are written together in one atomic rename
and can never disagree. Loading uses `allow_pickle=False` and checks the metadata against a
small schema before anything in it is used.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CheckpointError
from .fileio import atomic_write, atomic_write_text

FORMAT_NAME = "lenet5"
FORMAT_VERSION = 1
METADATA_KEY = "__metadata__"

# key -> (type, required); the kinds of file and what each must say about itself.
_SCHEMA: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "format": (str, True),
    "format_version": (int, True),
    "kind": (str, True),
    "architecture": (str, True),
    "preprocessing": (dict, True),
    "dataset": (str, False),
    "hyperparameters": (dict, False),
    "metrics": (dict, False),
    "versions": (dict, False),
    "training": (dict, False),
}
KINDS = ("model", "checkpoint")


def save_arrays(path: str | Path, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> None:
    """Write arrays and metadata as one `.npz`, atomically."""
    metadata = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **metadata}
    validate_metadata(metadata, str(path))
    payload = dict(arrays)
    payload[METADATA_KEY] = np.frombuffer(json.dumps(metadata).encode("utf-8"), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **payload)
    with atomic_write(path, "wb") as handle:
        handle.write(buffer.getvalue())


def load_arrays(path: str | Path, kind: str | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by `save_arrays`; every problem is a one-line CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except ValueError as error:
        if "pickle" in str(error).lower():
            raise CheckpointError(f"{path}: refused, the file holds pickled objects (only plain arrays are loaded)") from None
        raise CheckpointError(f"{path}: not a valid .npz file ({error})") from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as error:
        raise CheckpointError(f"{path}: corrupt or truncated .npz file ({type(error).__name__}: {error})") from None
    raw = arrays.pop(METADATA_KEY, None)
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise CheckpointError(f"{path}: no lenet5 metadata in the file")
    try:
        metadata = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: metadata is not valid JSON ({error})") from None
    validate_metadata(metadata, str(path))
    if kind is not None and metadata["kind"] != kind:
        raise CheckpointError(f"{path}: expected a {kind} file, found a {metadata['kind']} file")
    return arrays, metadata


def validate_metadata(metadata: Any, where: str) -> None:
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{where}: metadata must be a JSON object, found {type(metadata).__name__}")
    for key, (expected, required) in _SCHEMA.items():
        if key not in metadata:
            if required:
                raise CheckpointError(f"{where}: metadata lacks the required key {key!r}")
            continue
        value = metadata[key]
        if not isinstance(value, expected) or isinstance(value, bool):
            raise CheckpointError(
                f"{where}: metadata key {key!r} must be {getattr(expected, '__name__', expected)}, "
                f"found {type(value).__name__}"
            )
    if metadata["format"] != FORMAT_NAME:
        raise CheckpointError(f"{where}: not a lenet5 file (format {metadata['format']!r})")
    if metadata["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{where}: format version {metadata['format_version']} is not supported "
            f"(this lenet5 reads version {FORMAT_VERSION})"
        )
    if metadata["kind"] not in KINDS:
        raise CheckpointError(f"{where}: unknown file kind {metadata['kind']!r}")


def build_from_metadata(arrays: dict[str, np.ndarray], metadata: dict[str, Any], where: str, prefix: str = ""):
    """Rebuild the architecture named in the metadata and load its state strictly."""
    from .models import MODELS, build_model

    architecture = metadata["architecture"]
    if architecture not in MODELS:
        raise CheckpointError(f"{where}: unknown architecture {architecture!r}")
    model = build_model(architecture, seed=0)
    state = {name[len(prefix):]: value for name, value in arrays.items() if name.startswith(prefix)}
    try:
        model.load_state_dict(state, strict=True)
    except CheckpointError as error:
        raise CheckpointError(f"{where}: does not match architecture {architecture!r}: {error}") from None
    for name, value in state.items():
        if not np.isfinite(value).all():
            raise CheckpointError(f"{where}: {name} holds non-finite values")
    return model


def save_model(path: str | Path, model, metadata: dict[str, Any]) -> None:
    """`model.npz` (state dict + metadata) and a readable `model.json` beside it."""
    path = Path(path)
    metadata = {**metadata, "kind": "model", "architecture": model.name}
    save_arrays(path, model.state_dict(), metadata)
    full = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **metadata}
    atomic_write_text(path.with_suffix(".json"), json.dumps(full, indent=2) + "\n")


def load_model(path: str | Path):
    """(model in eval mode, metadata) from a `model.npz` or a run directory holding one."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.npz"
    arrays, metadata = load_arrays(path, kind="model")
    model = build_from_metadata(arrays, metadata, str(path))
    model.eval()
    return model, metadata
