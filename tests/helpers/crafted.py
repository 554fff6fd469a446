"""Crafted `.npz` files, built at test time: hostile model and checkpoint files, never checked in.

Each `write_*` function writes one file into the given path. The files are built member by
member with `zipfile`, so a member can say what it likes in its `.npy` header (a shape of
2**40 elements over a few KB of compressed zeros), use a compression method or flag lenet5
does not read, or hold int weights or JSON nested 100,000 levels deep.
"""

from __future__ import annotations

import io
import json
import random
import struct
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
from numpy.lib import format as npformat

from lenet5.files.weights import METADATA_KEY, save_model
from lenet5.training.checkpoint import TrainingState, save_checkpoint
from lenet5.training.recipe import TrainConfig, make_optimizer
from lenet5.zoo.models import build_model

PREPROCESSING = {"method": "standardize", "pad": 2}
MiB = 1024 * 1024


# -- building blocks -----------------------------------------------------------------------
def npy(array: np.ndarray) -> bytes:
    """An array as `np.save` writes it."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def npy_header(shape: tuple[int, ...], dtype=np.float32) -> bytes:
    """Only the header of a `.npy` member declaring `shape`: what a bomb puts before its data."""
    buffer = io.BytesIO()
    npformat.write_array_header_1_0(buffer, {"descr": npformat.dtype_to_descr(np.dtype(dtype)),
                                             "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def metadata_member(metadata) -> bytes:
    """The metadata member: a dict as JSON, or raw text as it is."""
    text = metadata if isinstance(metadata, str) else json.dumps(metadata)
    return npy(np.frombuffer(text.encode("utf-8"), dtype=np.uint8))


def write_members(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> Path:
    """A `.npz`: each member `name.npy` holding the given bytes."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(f"{name}.npy", data)
    return path


def members_of(path: Path) -> dict[str, bytes]:
    """The raw bytes of each member of a valid file, to be changed and written again."""
    with zipfile.ZipFile(path) as archive:
        return {info.filename[: -len(".npy")]: archive.read(info) for info in archive.infolist()}


def metadata_of(members: dict[str, bytes]) -> dict:
    return json.loads(np.load(io.BytesIO(members[METADATA_KEY])).tobytes())


def rewrite(source: Path, target: Path, change: Callable[[dict[str, bytes], dict], None]) -> Path:
    """`target`: the members of `source` after `change(members, metadata)` edits them in place."""
    members = members_of(source)
    metadata = metadata_of(members)
    change(members, metadata)
    members[METADATA_KEY] = metadata_member(metadata)
    return write_members(target, members)


def patch_zip_entries(path: Path, *, method: int | None = None, flags: int | None = None) -> Path:
    """Set the compression method or the flag bits of every member, in both the local
    headers and the central directory, as a file from another zip tool might have them."""
    data = bytearray(path.read_bytes())
    for signature, flag_offset, method_offset in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        start = data.find(signature)
        while start != -1:
            if flags is not None:
                struct.pack_into("<H", data, start + flag_offset, flags)
            if method is not None:
                struct.pack_into("<H", data, start + method_offset, method)
            start = data.find(signature, start + 4)
    path.write_bytes(bytes(data))
    return path


# -- valid files, the starting points ------------------------------------------------------
def write_model(path: Path, architecture: str = "relu") -> Path:
    save_model(path, build_model(architecture, seed=0), {"dataset": "mnist", "preprocessing": PREPROCESSING})
    return path


def write_checkpoint(path: Path, architecture: str = "relu", optimizer: str = "adam", epochs: int = 2) -> Path:
    """A checkpoint as a run of `epochs` epochs writes it after its first, its optimiser
    having stepped once (so its state is there)."""
    config = TrainConfig(model=architecture, epochs=epochs, batch_size=32, optimizer=optimizer, lr=1e-3,
                         schedule="constant", validation=0, seed=1).resolved()
    model = build_model(architecture, seed=0)
    opt = make_optimizer(config, model.parameters())
    for parameter in model.parameters():
        parameter.grad[...] = 0.01
    opt.step()
    state = TrainingState(epoch=1, step=0, history=[{
        "epoch": 1, "lr": 1e-3, "loss": 0.5, "accuracy": 0.9, "val_loss": None, "val_accuracy": None,
        "seconds": 1.5, "images_per_second": 100.0}])
    state.epoch_start_shuffle_state = np.random.default_rng(3).bit_generator.state
    generators = {"shuffle": np.random.default_rng(3), "augment": np.random.default_rng(4)}
    save_checkpoint(path, model=model, optimizer=opt, config=config, state=state, generators=generators,
                    metadata={"dataset": "mnist", "preprocessing": PREPROCESSING})
    return path


# -- hostile files -------------------------------------------------------------------------
def write_bomb(path: Path, valid: Path, name: str = "fc1.weight", elements: int = 2**40,
               payload: int = 8 * MiB) -> Path:
    """A valid file whose member `name` declares `elements` float32 values over `payload`
    bytes of zeros: a few KB on disk once deflated."""
    members = members_of(valid)
    members[name] = npy_header((elements,)) + bytes(payload)
    return write_members(path, members)


def write_honest_bomb(path: Path, valid: Path, name: str = "fc1.weight", nbytes: int = 256 * MiB) -> Path:
    """A member whose header, zip entry and data all agree on `nbytes` of zeros: only its
    shape gives it away. Streamed into the archive so that the test never holds it."""
    members = members_of(valid)
    members.pop(name, None)
    write_members(path, members)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        with archive.open(f"{name}.npy", "w", force_zip64=True) as stream:
            stream.write(npy_header((nbytes // 8,), np.float64))
            chunk = bytes(4 * MiB)
            for _ in range(nbytes // len(chunk)):
                stream.write(chunk)
    return path


def write_deep_json(path: Path, valid: Path, depth: int = 100_000) -> Path:
    """Metadata that is one list nested `depth` levels deep."""
    members = members_of(valid)
    members[METADATA_KEY] = metadata_member("[" * depth + "]" * depth)
    return write_members(path, members)


def write_random_bytes(path: Path, size: int = 4096) -> Path:
    path.write_bytes(random.Random(0).randbytes(size))
    return path


def write_truncated(path: Path, valid: Path, fraction: float = 0.5) -> Path:
    data = valid.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def write_with_array(path: Path, valid: Path, name: str, array: np.ndarray) -> Path:
    """A valid file with member `name` replaced (or added) by `array`."""
    return rewrite(valid, path, lambda members, metadata: members.__setitem__(name, npy(array)))


def write_with_metadata(path: Path, valid: Path, change: Callable[[dict], None]) -> Path:
    """A valid file whose metadata `change` edits."""
    return rewrite(valid, path, lambda members, metadata: change(metadata))


def write_without(path: Path, valid: Path, *prefixes: str) -> Path:
    """A valid file without the members whose names start with any of `prefixes`."""
    def drop(members, metadata):
        for name in [n for n in members if n.startswith(prefixes)]:
            del members[name]
    return rewrite(valid, path, drop)


def write_metadata_text(path: Path, valid: Path, edit: Callable[[str], str]) -> Path:
    """A valid file whose metadata's JSON text `edit` changes: for what `json.dumps` cannot
    write itself, such as a number of 5,000 digits."""
    members = members_of(valid)
    members[METADATA_KEY] = metadata_member(edit(json.dumps(metadata_of(members))))
    return write_members(path, members)


DELETE = object()  # as a value for `set_field`: remove the key instead


def set_field(key: str, value) -> Callable[[dict], None]:
    """A metadata edit: set `key` (dotted, e.g. `training.epoch`) to `value`, or delete the
    key if `value` is DELETE."""
    def edit(metadata: dict) -> None:
        *parents, last = key.split(".")
        target = metadata
        for parent in parents:
            target = target[parent]
        if value is DELETE:
            del target[last]
        else:
            target[last] = value
    return edit
