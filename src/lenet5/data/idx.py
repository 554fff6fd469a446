"""IDX files (the MNIST format): read and write, raw or gzip, validated before allocation.

Layout: two zero bytes, a type byte (0x08: unsigned byte), a dimension count, one
big-endian uint32 per dimension, then the data. Images are 3-d (magic 2051), labels 1-d
(magic 2049).
"""

from __future__ import annotations

import gzip
import io
import struct
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..fileio import atomic_write

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
MAX_ELEMENTS = 10**9  # far above any MNIST-format file; stops absurd headers early


def _open(path: Path):
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb"), gzipped


def read_header(path: Path, handle) -> tuple[int, tuple[int, ...]]:
    head = handle.read(4)
    if len(head) < 4:
        raise DataError(f"{path}: truncated IDX header ({len(head)} of 4 bytes)")
    magic = struct.unpack(">I", head)[0]
    if magic not in (IMAGES_MAGIC, LABELS_MAGIC):
        raise DataError(f"{path}: not an IDX file of unsigned bytes (magic {magic}, expected "
                        f"{IMAGES_MAGIC} for images or {LABELS_MAGIC} for labels)")
    ndim = magic & 0xFF
    raw = handle.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise DataError(f"{path}: truncated IDX header ({4 + len(raw)} of {4 + 4 * ndim} bytes)")
    shape = struct.unpack(f">{ndim}I", raw)
    elements = int(np.prod(shape, dtype=np.int64))
    if any(d == 0 for d in shape[1:]) or elements > MAX_ELEMENTS:
        raise DataError(f"{path}: implausible IDX dimensions {shape}")
    return magic, shape


def read_idx(path: str | Path, expected_magic: int | None = None, mmap: bool = False) -> np.ndarray:
    """The array in an IDX file (raw or .gz), checked against its header.

    The header is checked before anything is allocated, and at most the announced number of
    bytes (plus one, to detect trailing data) is ever read, so a 20-byte file announcing a
    billion images, or a gzip bomb, costs nothing. `mmap` maps a raw file instead of reading it.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    handle, gzipped = _open(path)
    try:
        with handle:
            magic, shape = read_header(path, handle)
            if expected_magic is not None and magic != expected_magic:
                kind = "images" if expected_magic == IMAGES_MAGIC else "labels"
                raise DataError(f"{path}: expected an IDX {kind} file (magic {expected_magic}), found magic {magic}")
            count = int(np.prod(shape, dtype=np.int64))
            offset = 4 + 4 * len(shape)
            if not gzipped:
                size = path.stat().st_size
                if size != offset + count:
                    raise DataError(f"{path}: header announces {count:,} data bytes, the file holds "
                                    f"{size - offset:,}")
                if mmap:
                    return np.memmap(path, dtype=np.uint8, mode="r", offset=offset, shape=shape)
            data = handle.read(count + 1)
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise DataError(f"{path}: cannot read ({type(error).__name__}: {error})") from None
    if len(data) != count:
        found = f"{len(data):,}" if len(data) <= count else "more"
        raise DataError(f"{path}: header announces {count:,} data bytes, the file holds {found}")
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def write_idx(path: str | Path, array: np.ndarray, compress: bool | None = None) -> None:
    """Write a uint8 array (3-d images or 1-d labels) as IDX, atomically; .gz by name."""
    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    if array.ndim not in (1, 3):
        raise ValueError(f"write_idx: expected 1-d labels or 3-d images, found shape {array.shape}")
    magic = LABELS_MAGIC if array.ndim == 1 else IMAGES_MAGIC
    payload = struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        buffer = io.BytesIO()
        with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:
            gz.write(payload)
        payload = buffer.getvalue()
    with atomic_write(path, "wb") as handle:
        handle.write(payload)
