"""The IDX reader and writer: round trips and every rejection, before any allocation."""

import gzip
import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from lenet5.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx, write_idx
from lenet5.errors import DataError


@pytest.mark.parametrize("name", ["images", "images.gz"])
def test_round_trip_raw_and_gzip(tmp_path, name):
    images = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / name, images)
    assert np.array_equal(read_idx(tmp_path / name, IMAGES_MAGIC), images)
    labels = np.arange(7, dtype=np.uint8)
    write_idx(tmp_path / f"labels-{name}", labels)
    assert np.array_equal(read_idx(tmp_path / f"labels-{name}", LABELS_MAGIC), labels)


def test_memory_map_reads_a_raw_file_without_loading_it(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "images", images)
    mapped = read_idx(tmp_path / "images", mmap=True)
    assert isinstance(mapped, np.memmap) and np.array_equal(mapped, images)


def header(magic, *dims):
    return struct.pack(f">I{len(dims)}I", magic, *dims)


@pytest.mark.parametrize("content, message", [
    (b"\x00\x00", "truncated IDX header"),
    (header(0x0D0A0D0A), "not an IDX file"),
    (header(0x00000C03, 1, 1, 1) + b"\x00", "not an IDX file"),  # int32 data, not bytes
    (header(IMAGES_MAGIC, 2, 28), "truncated IDX header"),
    (header(IMAGES_MAGIC, 2, 28, 28) + bytes(100), "the file holds 100"),
    (header(IMAGES_MAGIC, 1, 2, 2) + bytes(5), "the file holds 5"),  # trailing byte
    (header(IMAGES_MAGIC, 5, 0, 28), "implausible IDX dimensions"),
    (header(IMAGES_MAGIC, 4_000_000_000, 28, 28), "implausible IDX dimensions"),
])
def test_bad_files_are_rejected_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad-idx"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_wrong_kind_of_file_is_named(tmp_path):
    write_idx(tmp_path / "labels", np.zeros(3, np.uint8))
    with pytest.raises(DataError, match="expected an IDX images file"):
        read_idx(tmp_path / "labels", IMAGES_MAGIC)


def test_a_tiny_file_announcing_a_billion_images_fails_without_allocating(tmp_path):
    path = tmp_path / "liar"
    path.write_bytes(header(IMAGES_MAGIC, 1_000_000, 28, 28) + bytes(4))
    tracemalloc.start()
    with pytest.raises(DataError, match="header announces 784,000,000 data bytes"):
        read_idx(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1_000_000


def test_a_gzip_bomb_is_bounded_by_the_header(tmp_path):
    path = tmp_path / "bomb.gz"
    with gzip.open(path, "wb") as handle:  # announces 4 bytes, then 200 MB of zeros
        handle.write(header(IMAGES_MAGIC, 1, 2, 2))
        zeros = bytes(1 << 20)
        for _ in range(200):
            handle.write(zeros)
    assert path.stat().st_size < 1_000_000
    tracemalloc.start()
    with pytest.raises(DataError, match="header announces 4 data bytes, the file holds more"):
        read_idx(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 5_000_000


def test_truncated_gzip_is_rejected(tmp_path):
    write_idx(tmp_path / "whole.gz", np.ones((50, 28, 28), np.uint8) * 7)
    data = (tmp_path / "whole.gz").read_bytes()
    (tmp_path / "cut.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.gz"):
        read_idx(tmp_path / "cut.gz")


def test_writes_are_atomic(tmp_path):
    path = tmp_path / "images"
    write_idx(path, np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(ValueError):
        write_idx(path, np.zeros((2, 2), np.uint8))  # rejected: 2-d
    assert read_idx(path).shape == (2, 28, 28)
    assert [p.name for p in tmp_path.iterdir()] == ["images"]


def _valid_idx() -> bytes:
    return header(IMAGES_MAGIC, 3, 4, 4) + bytes(range(48))


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_idx_reader_returns_an_array_or_its_own_error(tmp_path, data):
    valid = _valid_idx()
    choice = data.draw(st.sampled_from(["random", "mutate", "gzip"]))
    if choice == "random":
        blob = data.draw(st.binary(max_size=200))
    elif choice == "mutate":
        blob = bytearray(valid)
        for _ in range(data.draw(st.integers(1, 4))):
            blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
        blob = bytes(blob[: data.draw(st.integers(0, len(blob)))])
    else:
        blob = gzip.compress(valid)
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    path = tmp_path / "fuzz-idx"
    path.write_bytes(blob)
    try:
        array = read_idx(path)
    except DataError:
        return
    assert array.dtype == np.uint8 and array.ndim in (1, 3)
