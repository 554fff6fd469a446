"""Model and checkpoint files: `.npz` arrays plus JSON metadata, never pickle.

Each file is one `.npz` whose arrays are the flat state dict and whose `__metadata__` entry
is UTF-8 JSON (as uint8), so arrays and metadata are written together in one atomic rename
and can never disagree. Loading uses `allow_pickle=False` and checks the metadata against a
small schema before anything in it is used.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
from numpy.lib import format as npformat

from ..errors import CheckpointError, Lenet5Error
from ..text import one_line
from .writing import atomic_write, atomic_write_text

FORMAT_NAME = "lenet5"
FORMAT_VERSION = 1
METADATA_KEY = "__metadata__"

# key -> (type, required); the kinds of file and what each must say about itself.
_SCHEMA: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "format": (str, True),
    "format_version": (int, True),
    "kind": (str, True),
    "architecture": (str, True),
    "architecture_revision": (int, False),  # absent in runs saved before revisions: 1
    "preprocessing": (dict, True),
    "dataset": (str, False),
    "hyperparameters": (dict, False),
    "metrics": (dict, False),
    "versions": (dict, False),
    "training": (dict, False),
}
KINDS = ("model", "checkpoint")

# Limits checked before anything is decompressed. A real file has one member per array of
# the state dict (and, in a checkpoint, about three per parameter), metadata of a few KB
# (the history adds ~250 bytes an epoch) nested about five levels deep.
MAX_MEMBERS = 512
MAX_METADATA_BYTES = 4 * 1024 * 1024
MAX_JSON_DEPTH = 32
MAX_HEADER_BYTES = 10_000
_HEADER_LENGTH_BYTES = {(1, 0): 2, (2, 0): 4}  # .npy versions read, and the size of their header-length field
WEIGHT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


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


def load_arrays(path: str | Path, kind: str | None = None,
                expected: Callable[[dict[str, Any]], dict[str, tuple[int, ...]]] | None = None,
                ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by `save_arrays`; every problem is a one-line CheckpointError.

    Nothing is decompressed before it is known to be small: the archive's directory is
    checked first (member count, names, compression, encryption), then the metadata (itself
    size-capped), then each member's `.npy` header against what the metadata allows, and
    only then is the data read, exactly as many bytes as that header promised. A zip bomb
    or an absurd declared shape is refused from its few header bytes.

    Args:
        kind: "model" or "checkpoint"; None accepts either.
        expected: `expected(metadata) -> {member name: shape}`, every member the file may
            hold besides the metadata (missing ones are the caller's to judge). Default: for
            a model, the state dict of the architecture it names; otherwise any member shaped
            like one of that architecture's arrays, or a scalar.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a .npz file")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        with zipfile.ZipFile(path) as archive:
            members = _members(archive, path)
            if METADATA_KEY not in members:
                raise CheckpointError(f"{path}: no lenet5 metadata in the file")
            raw = _read_member(archive, members.pop(METADATA_KEY), path, _metadata_check(path))
            metadata = _parse_metadata(raw, path)
            if kind is not None and metadata["kind"] != kind:
                raise CheckpointError(f"{path}: expected a {kind} file, found a {metadata['kind']} file")
            allowed = expected(metadata) if expected else _default_expected(metadata, path)
            arrays = {}
            for name, info in members.items():
                arrays[name] = _read_member(archive, info, path, _shape_check(name, allowed, metadata, path))
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, zlib.error, NotImplementedError) as error:
        raise CheckpointError(f"{path}: corrupt or truncated .npz file ({type(error).__name__}: "
                              f"{one_line(error, 200)})") from None
    return arrays, metadata


def _members(archive: zipfile.ZipFile, path: Path) -> dict[str, zipfile.ZipInfo]:
    """Each member's entry by array name, refusing what `np.savez` never writes."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise CheckpointError(f"{path}: refused, {len(infos)} members (a lenet5 file holds at most {MAX_MEMBERS})")
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        shown = one_line(repr(info.filename), 80)
        if info.flag_bits & 0x1:
            raise CheckpointError(f"{path}: refused, member {shown} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise CheckpointError(f"{path}: refused, member {shown} uses unsupported compression method "
                                  f"{info.compress_type} (only stored or deflated)")
        if not info.filename.endswith(".npy"):
            raise CheckpointError(f"{path}: refused, member {shown} is not a .npy array")
        name = info.filename[: -len(".npy")]
        if name in members:
            raise CheckpointError(f"{path}: refused, member {shown} appears twice")
        members[name] = info
    return members


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path,
                 check: Callable[[tuple[int, ...], np.dtype], None]) -> np.ndarray:
    """One member's array: its header is read and passed to `check` before any data is.

    The data read is exactly what the header declares (bounded by `check`); one more byte
    is asked for so that zipfile reaches the end of the member and verifies its CRC.
    """
    name = info.filename[: -len(".npy")]
    with archive.open(info) as stream:
        try:
            version = npformat.read_magic(stream)
            if version not in _HEADER_LENGTH_BYTES:
                raise ValueError(f".npy format version {version} is not supported")
            # The header's length is checked here, before NumPy reads that many bytes, and in
            # our words: NumPy's own refusal advises allow_pickle=True, which lenet5 never uses.
            length_bytes = stream.read(_HEADER_LENGTH_BYTES[version])
            length = int.from_bytes(length_bytes, "little")
            if length > MAX_HEADER_BYTES:
                raise CheckpointError(f"{path}: refused, member {name!r} declares a .npy header of {length:,} "
                                      f"bytes (a lenet5 file's are under {MAX_HEADER_BYTES:,})")
            header = io.BytesIO(length_bytes + stream.read(length))
            read_header = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
            shape, fortran_order, dtype = read_header(header, max_header_size=MAX_HEADER_BYTES)
        except (ValueError, TypeError, SyntaxError, OverflowError, MemoryError, RecursionError) as error:
            raise CheckpointError(f"{path}: member {name!r} is not a valid .npy array ({one_line(error, 200)})") from None
        if dtype.hasobject:
            raise CheckpointError(f"{path}: refused, member {name!r} holds pickled objects "
                                  "(only plain arrays are loaded)")
        if dtype.kind not in "biuf" or dtype.subdtype is not None or dtype.names is not None:
            raise CheckpointError(f"{path}: refused, member {name!r} has dtype {one_line(dtype, 60)} "
                                  "(only numbers are loaded)")
        if not all(isinstance(size, int) and size >= 0 for size in shape):
            raise CheckpointError(f"{path}: member {name!r} declares an invalid shape {one_line(shape, 60)}")
        check(shape, dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        if info.file_size != stream.tell() + nbytes:
            raise CheckpointError(f"{path}: member {name!r} declares {info.file_size} bytes, but its header "
                                  f"promises {stream.tell() + nbytes}")
        buffer = bytearray(nbytes)
        if stream.readinto(buffer) != nbytes or stream.read(1):
            raise CheckpointError(f"{path}: member {name!r} is truncated or has trailing data")
    array = np.frombuffer(buffer, dtype=dtype)
    return array.reshape(shape, order="F" if fortran_order else "C")


def _metadata_check(path: Path):
    def check(shape: tuple[int, ...], dtype: np.dtype) -> None:
        if dtype != np.uint8 or len(shape) != 1:
            raise CheckpointError(f"{path}: no lenet5 metadata in the file (its {METADATA_KEY} is not text)")
        if shape[0] > MAX_METADATA_BYTES:
            raise CheckpointError(f"{path}: refused, metadata of {shape[0]} bytes "
                                  f"(at most {MAX_METADATA_BYTES})")
    return check


def _parse_metadata(raw: np.ndarray, path: Path) -> dict[str, Any]:
    """The JSON metadata, refusing what could exhaust the stack or hide a huge number."""
    try:
        metadata = json.loads(raw.tobytes().decode("utf-8"))
    except RecursionError:
        raise CheckpointError(f"{path}: metadata is nested too deeply (at most {MAX_JSON_DEPTH} levels)") from None
    except (UnicodeDecodeError, ValueError) as error:  # JSONDecodeError, or an int of 5000 digits
        raise CheckpointError(f"{path}: metadata is not valid JSON ({one_line(error, 200)})") from None
    if json_depth(metadata) > MAX_JSON_DEPTH:
        raise CheckpointError(f"{path}: metadata is nested too deeply (at most {MAX_JSON_DEPTH} levels)")
    validate_metadata(metadata, str(path))
    return metadata


def json_depth(value: Any) -> int:
    """How deeply lists and objects nest in a parsed JSON value, found without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def architecture_revision(metadata: dict[str, Any]) -> int:
    """The revision of its model's layers a file was saved with (1 before revisions were saved)."""
    return metadata.get("architecture_revision", 1)


def build_architecture(metadata: dict[str, Any], where: str):
    """A fresh model (seed 0) of the architecture and revision the metadata names."""
    from ..zoo.models import MODELS, build_model

    architecture = metadata["architecture"]
    if architecture not in MODELS:
        raise CheckpointError(f"{where}: unknown architecture {architecture!r}")
    try:
        return build_model(architecture, seed=0, revision=architecture_revision(metadata))
    except Lenet5Error as error:
        raise CheckpointError(f"{where}: {error}") from None


def architecture_shapes(metadata: dict[str, Any], where: str) -> dict[str, tuple[int, ...]]:
    """The state dict shapes of the named architecture, from a freshly built model."""
    return {name: value.shape for name, value in build_architecture(metadata, where).state_dict().items()}


def _default_expected(metadata: dict[str, Any], path: Path) -> dict[str, tuple[int, ...]] | set:
    shapes = architecture_shapes(metadata, str(path))
    if metadata["kind"] == "model":
        return shapes
    return set(shapes.values()) | {()}  # any member shaped like a model array, or a scalar


def _shape_check(name: str, allowed, metadata: dict[str, Any], path: Path):
    """The check of one member's header against what the metadata allows."""
    def check(shape: tuple[int, ...], dtype: np.dtype) -> None:
        if isinstance(allowed, set):
            if tuple(shape) not in allowed:
                raise CheckpointError(f"{path}: refused, member {name!r} declares shape {one_line(shape, 60)}, "
                                      f"unlike any array of architecture {metadata['architecture']!r}")
            return
        if name not in allowed:
            raise CheckpointError(f"{path}: does not match architecture {metadata['architecture']!r}: "
                                  f"unexpected keys: {one_line(name, 80)}")
        if tuple(shape) != tuple(allowed[name]):
            raise CheckpointError(f"{path}: does not match architecture {metadata['architecture']!r}: "
                                  f"shape mismatch for {name}: expected {tuple(allowed[name])}, "
                                  f"found {one_line(tuple(shape), 60)}")
    return check


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
    """Rebuild the architecture (and revision) named in the metadata and load its state strictly."""
    architecture = metadata["architecture"]
    model = build_architecture(metadata, where)
    state = {name[len(prefix):]: value for name, value in arrays.items() if name.startswith(prefix)}
    check_weights(state, where, prefix)  # before loading: load_state_dict would cast ints silently
    try:
        model.load_state_dict(state, strict=True)
    except CheckpointError as error:
        raise CheckpointError(f"{where}: does not match architecture {architecture!r}: {error}") from None
    return model


def check_weights(state: dict[str, np.ndarray], where: str, prefix: str = "") -> None:
    """Weights are float32 or float64 and finite: an int or bool array is not a trained model."""
    for name, value in state.items():
        if value.dtype not in WEIGHT_DTYPES:
            raise CheckpointError(f"{where}: {prefix}{name} is {value.dtype}; weights must be float32 or float64")
        if not np.isfinite(value).all():
            raise CheckpointError(f"{where}: {prefix}{name} holds non-finite values")


def revision_metadata(model) -> dict[str, int]:
    """The revision of a zoo model's layers, for its file's metadata (a hand-built model has none)."""
    revision = getattr(model, "architecture_revision", None)
    return {} if revision is None else {"architecture_revision": revision}


def save_model(path: str | Path, model, metadata: dict[str, Any]) -> None:
    """`model.npz` (state dict + metadata) and a readable `model.json` beside it."""
    path = Path(path)
    metadata = {**metadata, "kind": "model", "architecture": model.name,
                **revision_metadata(model)}
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
