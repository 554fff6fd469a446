"""Fault injection for run directories (issue 20, items 5 and 8): a full disk at each kind of
write, read-only directories, and crafted run metadata.

Each case asserts the exit code, a single line on stderr with no traceback, a message that says
what could not be written (or which file and field is wrong) and why, and that no file of a
finished run changed. Every crafted file is made here, at test time.
"""

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from lenet5.cli import main as cli
from lenet5.errors import RunDirError
from lenet5.files.weights import load_arrays, save_arrays
from lenet5.run.preprocessing import preprocess_like

from ..helpers.commands import assert_one_line_error, lenet5
from ..helpers.crafted import DELETE, set_field

TINY = ["--model", "relu", "--train-limit", "300", "--validation", "100", "--test-limit", "100", "--epochs", "1",
        "--batch-size", "64", "--augment", "none", "--no-progress"]
ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


def snapshot(run_dir):
    """Every file of a run directory and its bytes, to show that a failure changed none."""
    return {p.relative_to(run_dir): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def limit_file_size(limit):
    """A full disk, simulated: a file-size limit, with SIGXFSZ ignored so write() fails with EFBIG."""
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, mnist_dir):
    run_dir = tmp_path_factory.mktemp("fault-injection") / "finished"
    lenet5("train", *TINY, "--out", run_dir, "--data-dir", mnist_dir, check=True)
    return run_dir


@pytest.fixture
def run_copy(finished_run, tmp_path):
    """A private copy of the finished run, for tests that write into it or break it."""
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def no_temporary_files(run_dir):
    return [p.name for p in run_dir.iterdir() if p.name.startswith(".")] == []


# -- a full disk ---------------------------------------------------------------------------------

def test_a_full_disk_at_the_final_save_names_the_file_and_keeps_the_checkpoint(run_copy, mnist_dir):
    """The last writes of a run (model.npz, model.json, metrics.json) fail on a full disk: one
    line saying which file and "file too large", never "unreadable" or a traceback; the
    checkpoint is untouched, and --resume finishes the run once there is room."""
    (run_copy / "model.npz").unlink()
    before = snapshot(run_copy)
    args = [sys.executable, "-m", "lenet5", "train", "--out", str(run_copy), "--resume", "--data-dir",
            str(mnist_dir), "--no-progress"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, preexec_fn=limit_file_size(4096))
    assert_one_line_error(result, "cannot write", "model.npz", "file too large", "--resume")
    assert "unreadable" not in result.stderr
    assert snapshot(run_copy) == before and no_temporary_files(run_copy)
    finished = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0 and (run_copy / "model.npz").is_file(), finished.stderr


@pytest.mark.parametrize("name", ["history.csv", "history.json", "metrics.json", "model.npz"])
def test_no_space_left_at_each_run_file_is_one_line_naming_it(tmp_path, mnist_dir, monkeypatch, capsys, name):
    """ENOSPC at each file the trainer writes after its checkpoint (history, metrics, model),
    injected in-process at the write itself: the message names the file and says "no space left
    on the device", and the checkpoint stays for --resume."""
    from lenet5.files import writing as fileio

    real = fileio.atomic_write

    def full_disk_for_one_file(path, mode="wb"):
        if os.path.basename(path) == name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, mode)

    for module in ("lenet5.files.writing", "lenet5.files.weights"):
        monkeypatch.setattr(f"{module}.atomic_write", full_disk_for_one_file)
    run_dir = tmp_path / "run"
    code = cli.main(["train", *TINY, "--out", str(run_dir), "--data-dir", str(mnist_dir)])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
    assert f"cannot write {run_dir / name}" in lines[0] and "no space left on the device" in lines[0], lines[0]
    assert "--resume" in lines[0] and (run_dir / "checkpoint.npz").is_file()


def test_a_full_disk_in_report_leaves_no_partial_report(run_copy, mnist_dir):
    """`lenet5 report` on a full disk: one line naming RUN/report and why; no report folder,
    no temporary folder, and the run's own files unchanged."""
    before = snapshot(run_copy)
    result = subprocess.run([sys.executable, "-m", "lenet5", "report", str(run_copy), "--data-dir", str(mnist_dir)],
                            capture_output=True, text=True, timeout=600, preexec_fn=limit_file_size(20_000))
    assert_one_line_error(result, "cannot write the report", str(run_copy / "report"), "file too large")
    assert snapshot(run_copy) == before and no_temporary_files(run_copy)
    assert not (run_copy / "report").exists()


# -- read-only directories -----------------------------------------------------------------------

def test_train_into_a_path_under_a_file_is_one_line(tmp_path, mnist_dir):
    """A run directory that cannot be created (a path under a plain file: unwritable even for
    root, who ignores permission bits) is refused in one line before anything trains."""
    (tmp_path / "a-file").write_text("")
    result = lenet5("train", *TINY, "--out", tmp_path / "a-file" / "run", "--data-dir", mnist_dir)
    assert_one_line_error(result, "cannot write to run directory", "not a directory")


@pytest.mark.skipif(ROOT, reason="root ignores permission bits, so chmod cannot make a directory read-only; "
                                 "the path-under-a-file and injected EACCES cases cover it")
def test_train_and_report_in_a_read_only_run_directory(run_copy, mnist_dir):
    """chmod 555 on a finished run: train --overwrite and report fail in one line; nothing changes."""
    before = snapshot(run_copy)
    run_copy.chmod(0o555)
    try:
        trained = lenet5("train", *TINY, "--out", run_copy, "--overwrite", "--data-dir", mnist_dir)
        reported = lenet5("report", run_copy, "--data-dir", mnist_dir)
    finally:
        run_copy.chmod(0o755)
    assert_one_line_error(trained, "cannot write to run directory", "permission denied")
    assert_one_line_error(reported, "cannot write the report", "permission denied")
    assert snapshot(run_copy) == before


def test_report_into_a_read_only_run_directory_is_one_line(run_copy, mnist_dir, monkeypatch, capsys):
    """The report's folder cannot be made (EACCES, injected where the folder is created, so the
    test holds for root too): one line naming RUN/report and "permission denied"."""
    import tempfile

    def refused(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(tempfile, "mkdtemp", refused)
    before = snapshot(run_copy)
    code = cli.main(["report", str(run_copy), "--data-dir", str(mnist_dir)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(lines) == 1, lines
    assert f"cannot write the report {run_copy / 'report'}: permission denied" in lines[0]
    assert snapshot(run_copy) == before


def test_a_read_only_cache_with_the_data_given_is_not_touched(tmp_path, mnist_dir):
    """XDG_CACHE_HOME under a plain file (an unwritable cache, root included) does not matter
    when --data-dir gives the data: training never writes to the cache."""
    (tmp_path / "a-file").write_text("")
    env = {"XDG_CACHE_HOME": str(tmp_path / "a-file"), "LENET5_DATA_DIR": ""}
    result = lenet5("train", *TINY, "--out", tmp_path / "run", "--data-dir", mnist_dir, env=env)
    assert result.returncode == 0, result.stderr


def test_a_read_only_cache_without_the_data_is_one_line(finished_run, tmp_path):
    """With an unwritable cache and no --data-dir, the data cannot be fetched anywhere: one line
    (mirrors pointed at a closed port on 127.0.0.1, so no test reaches the network)."""
    (tmp_path / "a-file").write_text("")
    before = snapshot(finished_run)
    env = {"XDG_CACHE_HOME": str(tmp_path / "a-file"), "LENET5_DATA_DIR": "", "LENET5_MIRRORS": "http://127.0.0.1:9/"}
    for args in (["evaluate", finished_run], ["train", *TINY, "--out", tmp_path / "run"]):
        result = lenet5(*args, env=env)
        assert_one_line_error(result, "mnist")
    assert snapshot(finished_run) == before


# -- crafted run metadata ------------------------------------------------------------------------

def craft_model(run_dir, change):
    """Rewrite RUN/model.npz with its metadata passed through `change` (weights untouched)."""
    arrays, metadata = load_arrays(run_dir / "model.npz", kind="model")
    change(metadata)
    save_arrays(run_dir / "model.npz", arrays, metadata)


BAD_METADATA = {
    "method missing": ("preprocessing.method", DELETE, "preprocessing.method"),
    "method a number": ("preprocessing.method", 5, "preprocessing.method"),
    "method unknown": ("preprocessing.method", "whiten", "preprocessing.method"),
    "pad missing": ("preprocessing.pad", DELETE, "preprocessing.pad"),
    "pad a string": ("preprocessing.pad", "2", "preprocessing.pad"),
    "pad a bool": ("preprocessing.pad", True, "preprocessing.pad"),
    "pad negative": ("preprocessing.pad", -1, "preprocessing.pad"),
    "pad huge": ("preprocessing.pad", 10**9, "preprocessing.pad"),
    "pad unlike the model": ("preprocessing.pad", 3, "preprocessing.pad"),
    "mean a string": ("preprocessing.mean", "x", "preprocessing.mean"),
    "std a list": ("preprocessing.std", [1], "preprocessing.std"),
    "class_names a string": ("class_names", "0123456789", "class_names"),
    "class_names too few": ("class_names", list("012345678"), "class_names"),
    "class_names numbers": ("class_names", list(range(10)), "class_names"),
    "class_names an object": ("class_names", {"0": "zero"}, "class_names"),
}


@pytest.fixture(scope="module")
def digit_png(tmp_path_factory):
    image = pytest.importorskip("PIL.Image")
    path = tmp_path_factory.mktemp("digit") / "digit.png"
    pixels = np.zeros((28, 28), np.uint8)
    pixels[6:22, 12:16] = 255
    image.fromarray(pixels).save(path)
    return path


@pytest.mark.parametrize("case", BAD_METADATA, ids=list(BAD_METADATA))
def test_crafted_run_metadata_is_one_line_naming_the_file_and_field(run_copy, mnist_dir, digit_png, case):
    """Metadata the commands would use unchecked (preprocessing fields of the wrong type or
    missing, class_names not 10 strings) is refused by evaluate, predict and report alike, in
    one line naming model.npz and the field, before any file is written."""
    path, value, field = BAD_METADATA[case]
    craft_model(run_copy, set_field(path, value))
    before = snapshot(run_copy)
    for args in (["evaluate", run_copy, "--data-dir", mnist_dir], ["predict", run_copy, digit_png],
                 ["report", run_copy, "--data-dir", mnist_dir]):
        result = lenet5(*args)
        assert_one_line_error(result, str(run_copy / "model.npz"), f"'{field}'")
    assert snapshot(run_copy) == before


def test_standardize_needs_a_positive_std(run_copy, mnist_dir):
    """A standardising run whose std is 0 would divide by zero: refused, naming the field."""
    craft_model(run_copy, set_field("preprocessing", {"method": "standardize", "pad": 2, "mean": 0.1, "std": 0}))
    assert_one_line_error(lenet5("evaluate", run_copy, "--data-dir", mnist_dir), "'preprocessing.std'", "positive")


def test_preprocess_like_checks_metadata_given_by_a_library_caller():
    """The library path (no run directory) gets the same check, not a KeyError."""
    images = np.zeros((1, 28, 28), np.uint8)
    with pytest.raises(RunDirError, match="'preprocessing.pad'"):
        preprocess_like(images, {"preprocessing": {"method": "scale", "pad": "2"}})
    with pytest.raises(RunDirError, match="'preprocessing'"):
        preprocess_like(images, {})
    assert preprocess_like(images, {"preprocessing": {"method": "scale", "pad": 2}}).shape == (1, 1, 32, 32)


BAD_HISTORY = {
    "not JSON": ("[{\"epoch\": 1,", "not valid JSON"),
    "an object": ("{\"epoch\": 1}", "must be a list"),
    "a row not an object": ("[1, 2]", "row 1 must be an object"),
    "epoch missing": ("[{\"loss\": 0.5}]", "field 'epoch'"),
    "epoch a string": ("[{\"epoch\": \"1\"}]", "field 'epoch'"),
    "loss a string": ("[{\"epoch\": 1, \"loss\": \"<script>\"}]", "field 'loss'"),
    "accuracy a list": ("[{\"epoch\": 1, \"accuracy\": [0.5]}]", "field 'accuracy'"),
    "nested deeply": ("[" * 100_000, "nested too deeply"),
    "not UTF-8": (b"\xff\xfe[]", "not UTF-8"),
}


@pytest.mark.parametrize("case", BAD_HISTORY, ids=list(BAD_HISTORY))
def test_a_malformed_history_is_one_line_in_report(run_copy, mnist_dir, case):
    """history.json is read by report only; malformed or wrong-shaped, it is one line naming
    the file (and the row and field), and no report folder appears."""
    content, fragment = BAD_HISTORY[case]
    path = run_copy / "history.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = snapshot(run_copy)
    result = lenet5("report", run_copy, "--data-dir", mnist_dir)
    assert_one_line_error(result, str(path), fragment)
    assert snapshot(run_copy) == before and not (run_copy / "report").exists()
