"""The IDX reader and writer: round trips and every rejection, before any allocation."""

import gzip
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from lenet5.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx, read_idx_header, write_idx
from lenet5.errors import DataError

from .conftest import header


def peak_bytes_while(function) -> int:
    """Peak Python-heap allocation (numpy buffers included) while `function` runs."""
    tracemalloc.start()
    try:
        function()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("name", ["images", "images.gz"])
def test_round_trip_raw_and_gzip(tmp_path, name):
    images = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / name, images)
    assert (tmp_path / name).read_bytes()[:2] == (b"\x1f\x8b" if name.endswith(".gz") else b"\x00\x00")
    loaded = read_idx(tmp_path / name, IMAGES_MAGIC)
    assert loaded.dtype == np.uint8 and np.array_equal(loaded, images)
    loaded[0, 0, 0] ^= 1  # an ordinary, writable array, not a view of a read-only buffer
    labels = np.arange(7, dtype=np.uint8)
    write_idx(tmp_path / f"labels-{name}", labels)
    assert np.array_equal(read_idx(tmp_path / f"labels-{name}", LABELS_MAGIC), labels)
    assert read_idx_header(tmp_path / name) == (IMAGES_MAGIC, (7, 28, 28))


def test_raw_file_layout_is_the_mnist_one(tmp_path):
    write_idx(tmp_path / "labels", np.array([3, 1, 4], np.uint8))
    assert (tmp_path / "labels").read_bytes() == bytes.fromhex("00000801 00000003 030104")


def test_memory_map_reads_a_raw_file_without_loading_it(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "images", images)
    write_idx(tmp_path / "images.gz", images)
    mapped = read_idx(tmp_path / "images", mmap=True)
    assert isinstance(mapped, np.memmap) and np.array_equal(mapped, images)
    assert not mapped.flags.writeable
    read = read_idx(tmp_path / "images.gz", mmap=True)  # gzip cannot be mapped: read instead
    assert not isinstance(read, np.memmap) and np.array_equal(read, images)
    write_idx(tmp_path / "empty", np.zeros((0, 28, 28), np.uint8))
    assert read_idx(tmp_path / "empty", mmap=True).shape == (0, 28, 28)


@pytest.mark.parametrize("content, message", [
    (b"\x00\x00", "truncated IDX header (2 of 4 magic bytes)"),
    (header(0x0D0A0D0A), "not an IDX file (starts with 0x0d0a0d0a, expected 0x00000803"),
    (header(0x00000C03, 1, 1, 1) + bytes(4), "type byte 0x0c, expected 0x08"),  # int32 data
    (header(0x00000802, 28, 28) + bytes(784), "2 dimensions, expected 3 or 1"),
    (header(0x00000804, 1, 1, 1, 1) + bytes(1), "4 dimensions, expected 3 or 1"),
    (header(IMAGES_MAGIC, 2, 28), "truncated IDX header (12 of 16 bytes)"),
    (header(IMAGES_MAGIC, 2, 28, 28) + bytes(100), "header announces 1,568 data bytes, the file holds 100"),
    (header(IMAGES_MAGIC, 1, 2, 2) + bytes(5), "header announces 4 data bytes, the file holds 5"),  # trailing
    (header(LABELS_MAGIC, 3) + bytes(2), "header announces 3 data bytes, the file holds 2"),
    (header(IMAGES_MAGIC, 5, 0, 28), "zero-size rows"),
    (header(IMAGES_MAGIC, 5, 28, 0), "zero-size rows"),
    (header(IMAGES_MAGIC, 4_000_000_000, 28, 28), "3,136,000,000,000 elements, expected at most 1,000,000,000"),
    # 2^31 · 2^31 · 4 = 2^64: zero in 64-bit arithmetic, and this file holds zero data bytes.
    (header(IMAGES_MAGIC, 2**31, 2**31, 4), "implausible IDX dimensions (2147483648, 2147483648, 4)"),
])
@pytest.mark.parametrize("compressed", [False, True])
def test_bad_files_are_rejected_naming_the_file(tmp_path, content, message, compressed):
    path = tmp_path / "bad-idx"
    path.write_bytes(gzip.compress(content) if compressed else content)
    if compressed:
        message = message.replace("the file holds", "the decompressed file holds")
        if message.endswith("holds 5"):
            message = message.replace("holds 5", "holds more (trailing data)")
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert message in str(info.value) and str(info.value).startswith(f"{path}: ")
    assert "\n" not in str(info.value)


def test_wrong_kind_of_file_is_named(tmp_path):
    write_idx(tmp_path / "labels", np.zeros(3, np.uint8))
    expected = r"expected an IDX images file \(magic 2051, 3-d\), found labels \(magic 2049\)"
    with pytest.raises(DataError, match=expected):
        read_idx(tmp_path / "labels", IMAGES_MAGIC)


def test_missing_file_and_directory_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_idx(tmp_path / "absent")
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path)


@pytest.mark.parametrize("compressed", [False, True])
def test_a_tiny_file_announcing_a_billion_bytes_fails_without_allocating(tmp_path, compressed):
    path = tmp_path / "liar"
    content = header(IMAGES_MAGIC, 1_000_000, 28, 28) + bytes(4)  # 20 bytes announcing 784 MB
    path.write_bytes(gzip.compress(content) if compressed else content)

    def read():
        with pytest.raises(DataError, match="header announces 784,000,000 data bytes"):
            read_idx(path)

    assert peak_bytes_while(read) < 2_000_000


def test_a_gzip_bomb_is_bounded_by_the_header(tmp_path):
    path = tmp_path / "bomb.gz"
    with gzip.open(path, "wb") as handle:  # announces 4 bytes, then 200 MB of zeros
        handle.write(header(IMAGES_MAGIC, 1, 2, 2))
        zeros = bytes(1 << 20)
        for _ in range(200):
            handle.write(zeros)
    assert path.stat().st_size < 1_000_000

    def read():
        with pytest.raises(DataError, match="header announces 4 data bytes, the decompressed file holds more"):
            read_idx(path)

    assert peak_bytes_while(read) < 5_000_000


def test_truncated_and_corrupt_gzip_are_rejected(tmp_path):
    write_idx(tmp_path / "whole.gz", np.random.default_rng(2).integers(0, 256, (50, 28, 28), dtype=np.uint8))
    data = (tmp_path / "whole.gz").read_bytes()
    (tmp_path / "cut.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.gz: cannot read"):
        read_idx(tmp_path / "cut.gz")
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF  # inside the deflate stream: a zlib error or a CRC mismatch
    (tmp_path / "flipped.gz").write_bytes(bytes(flipped))
    with pytest.raises(DataError, match="flipped.gz"):
        read_idx(tmp_path / "flipped.gz")


def test_writer_refuses_what_idx_cannot_hold_and_writes_atomically(tmp_path):
    path = tmp_path / "images"
    write_idx(path, np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="expected 1-d labels or 3-d images"):
        write_idx(path, np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="expected values 0..255"):
        write_idx(path, np.full((2, 28, 28), 300))
    assert read_idx(path).shape == (2, 28, 28)
    assert [p.name for p in tmp_path.iterdir()] == ["images"]  # no temporary file left behind
    write_idx(tmp_path / "labels", np.array([0, 9, 255]))  # int64 values in range are fine
    assert read_idx(tmp_path / "labels").tolist() == [0, 9, 255]


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
        blob = bytearray(gzip.compress(valid))
        if data.draw(st.booleans()):  # damage the compressed stream itself
            blob[data.draw(st.integers(10, len(blob) - 1))] ^= data.draw(st.integers(1, 255))
        blob = bytes(blob[: data.draw(st.integers(0, len(blob)))])
    path = tmp_path / "fuzz-idx"
    path.write_bytes(blob)
    try:
        array = read_idx(path)
    except DataError:
        return
    assert array.dtype == np.uint8 and array.ndim in (1, 3)
    assert array.size == int(np.prod(read_idx_header(path)[1]))
