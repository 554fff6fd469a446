"""IDX files (the MNIST format): read and write, raw or gzip, validated before allocation.

Layout: two zero bytes, a type byte (0x08: unsigned byte), a dimension count, one big-endian
uint32 per dimension, then the data, row-major. Images are 3-d (magic 2051 = 0x00000803),
labels 1-d (magic 2049 = 0x00000801).

The header is checked before anything is allocated, and never more than the bytes the header
announces (plus one, to detect trailing data) are read or decompressed, so a 20-byte file
announcing a billion images, or a gzip bomb, costs nothing.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import DataError
from ..files.writing import atomic_write

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
UNSIGNED_BYTE = 0x08
MAX_ELEMENTS = 10**9  # far above any MNIST-format file (47 million); stops absurd headers early
GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 20
_KIND = {IMAGES_MAGIC: "images", LABELS_MAGIC: "labels"}


def is_gzip(path: str | os.PathLike) -> bool:
    with open(path, "rb") as probe:
        return probe.read(2) == GZIP_MAGIC


def read_idx_header(path: str | os.PathLike) -> tuple[int, tuple[int, ...]]:
    """(magic, shape) of an IDX file, raw or gzip, reading only its header."""
    path = Path(path)
    with _reading(path):
        opener = gzip.open if is_gzip(path) else open
        with opener(path, "rb") as handle:
            return _parse_header(path, handle)


def read_idx(path: str | os.PathLike, expected_magic: int | None = None, mmap: bool = False) -> np.ndarray:
    """The uint8 array in an IDX file (raw or gzip), checked against its header.

    Args:
        path: the file; gzip is recognised by its first two bytes, not its name.
        expected_magic: IMAGES_MAGIC or LABELS_MAGIC to insist on one kind; None takes either.
        mmap: map a raw file read-only instead of reading it (a gzip file is read regardless).

    Shape: (N, rows, cols) for images, (N,) for labels, as the header announces.
    Raises DataError (one line, naming the file, expected vs found) for anything malformed.
    """
    path = Path(path)
    with _reading(path), open(path, "rb") as raw:
        if raw.read(2) == GZIP_MAGIC:
            raw.seek(0)
            with gzip.GzipFile(fileobj=raw, mode="rb") as handle:
                shape = _parse_header(path, handle, expected_magic)[1]
                count = math.prod(shape)
                data = _read_at_most(handle, count + 1)
            if len(data) != count:
                found = f"{len(data):,}" if len(data) < count else "more (trailing data)"
                raise DataError(f"{path}: header announces {count:,} data bytes, the decompressed file holds {found}")
            return np.frombuffer(data, dtype=np.uint8).reshape(shape)
        raw.seek(0)
        shape = _parse_header(path, raw, expected_magic)[1]
        count, offset = math.prod(shape), raw.tell()
        held = os.fstat(raw.fileno()).st_size - offset
        if held != count:
            raise DataError(f"{path}: header announces {count:,} data bytes, the file holds {held:,}")
        if mmap and count:
            return np.memmap(path, dtype=np.uint8, mode="r", offset=offset, shape=shape)
        array = np.empty(shape, dtype=np.uint8)  # safe: the file really holds `count` bytes
        got = raw.readinto(memoryview(array).cast("B")) if count else 0
        if got != count:  # the file shrank while we read it
            raise DataError(f"{path}: header announces {count:,} data bytes, read {got:,}")
        return array


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> None:
    """Write 3-d images or 1-d labels (values 0..255) as IDX, atomically; gzip if `compress`
    (by default when the name ends in .gz)."""
    path = Path(path)
    array = np.asarray(array)
    if array.ndim not in (1, 3):
        raise ValueError(f"write_idx: expected 1-d labels or 3-d images, found shape {array.shape}")
    if array.dtype != np.uint8:
        if array.size and not (np.issubdtype(array.dtype, np.integer) and array.min() >= 0 and array.max() <= 255):
            raise ValueError(f"write_idx: expected values 0..255, found dtype {array.dtype}")
        array = array.astype(np.uint8)
    magic = LABELS_MAGIC if array.ndim == 1 else IMAGES_MAGIC
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    body = np.ascontiguousarray(array).tobytes()
    compress = path.suffix == ".gz" if compress is None else compress
    with atomic_write(path, "wb") as handle:
        if compress:
            with gzip.GzipFile(fileobj=handle, mode="wb", mtime=0) as gz:
                gz.write(header + body)
        else:
            handle.write(header + body)


def _parse_header(path: Path, handle, expected_magic: int | None = None) -> tuple[int, tuple[int, ...]]:
    head = handle.read(4)
    if len(head) < 4:
        raise DataError(f"{path}: truncated IDX header ({len(head)} of 4 magic bytes)")
    if head[:2] != b"\x00\x00":
        raise DataError(f"{path}: not an IDX file (starts with 0x{head.hex()}, expected 0x00000803 or 0x00000801)")
    if head[2] != UNSIGNED_BYTE:
        raise DataError(f"{path}: not an IDX file of unsigned bytes (type byte 0x{head[2]:02x}, expected 0x08)")
    magic, ndim = struct.unpack(">I", head)[0], head[3]
    if magic not in _KIND:
        raise DataError(f"{path}: not an IDX images or labels file ({ndim} dimensions, expected 3 or 1)")
    if expected_magic is not None and magic != expected_magic:
        raise DataError(f"{path}: expected an IDX {_KIND[expected_magic]} file (magic {expected_magic}, "
                        f"{3 if expected_magic == IMAGES_MAGIC else 1}-d), found {_KIND[magic]} (magic {magic})")
    raw = handle.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise DataError(f"{path}: truncated IDX header ({4 + len(raw)} of {4 + 4 * ndim} bytes)")
    shape = struct.unpack(f">{ndim}I", raw)
    if 0 in shape[1:]:
        raise DataError(f"{path}: implausible IDX dimensions {shape}: zero-size rows, expected each sample non-empty")
    if math.prod(shape) > MAX_ELEMENTS:  # Python ints: no overflow, unlike a uint32 or int64 product
        raise DataError(f"{path}: implausible IDX dimensions {shape}: {math.prod(shape):,} elements, "
                        f"expected at most {MAX_ELEMENTS:,}")
    return magic, shape


def _read_at_most(handle, limit: int) -> bytearray:
    """Up to `limit` bytes, in chunks: memory grows with what the stream really holds, never
    with what a header claims (one `read(limit)` would allocate `limit` bytes up front)."""
    data = bytearray()
    while len(data) < limit:
        block = handle.read(min(CHUNK, limit - len(data)))
        if not block:
            break
        data += block
    return data


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turns the ways reading a file can fail into one-line DataErrors naming the file."""
    try:
        yield
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, EOFError, zlib.error) as error:  # DataError is none of these
        reason = str(error).splitlines()[0] if str(error) else "no details"
        raise DataError(f"{path}: cannot read ({type(error).__name__}: {reason})") from None
