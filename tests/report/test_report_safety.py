"""`lenet5 report` never leaves half a report, and never puts a run's text into the page as HTML."""

import errno
import json
import os
import shutil

import pytest

pytest.importorskip("matplotlib")

from lenet5 import report as report_module  # noqa: E402
from lenet5.errors import Lenet5Error  # noqa: E402
from lenet5.report import make_report  # noqa: E402

from ..helpers.commands import assert_one_line_error, lenet5
from ..training.test_run_dir_safety import finished_run  # noqa: E402, F401  (the fixture)
from ..training.test_run_dir_safety import snapshot  # noqa: E402

INJECTED = "<script>alert('history')</script>"


@pytest.fixture
def run_dir(finished_run, tmp_path):  # noqa: F811
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def hidden_entries(run_dir):
    return [p.name for p in run_dir.iterdir() if p.name.startswith(".")]


def test_text_from_the_run_s_files_is_escaped_in_the_page(run_dir, mnist_dir):
    from lenet5.files.weights import load_model, save_model

    model, metadata = load_model(run_dir)
    metadata["class_names"] = [INJECTED] + metadata["class_names"][1:]
    save_model(run_dir / "model.npz", model, {k: v for k, v in metadata.items()
                                              if k not in ("format", "format_version", "kind", "architecture")})
    result = lenet5("report", run_dir, "--data-dir", mnist_dir)
    assert result.returncode == 0, result.stderr
    page = (run_dir / "report" / "index.html").read_text()
    assert INJECTED not in page
    assert "&lt;script&gt;alert(&#x27;history&#x27;)&lt;/script&gt;" in page
    assert page.count("<script>") == 1  # the page's own image check, nothing else


def test_markup_where_history_holds_numbers_is_refused_in_one_line(run_dir, mnist_dir):
    history = json.loads((run_dir / "history.json").read_text())
    history[-1]["val_accuracy"] = INJECTED
    (run_dir / "history.json").write_text(json.dumps(history))
    assert_one_line_error(lenet5("report", run_dir, "--data-dir", mnist_dir), "history.json", "val_accuracy")
    assert not (run_dir / "report").exists()


def test_a_report_that_fails_leaves_no_folder(run_dir, mnist_dir):
    before = snapshot(run_dir)
    result = lenet5("report", run_dir, "--index", "99999", "--data-dir", mnist_dir)
    assert_one_line_error(result, "--index 99999 is outside the test set")
    assert snapshot(run_dir) == before and not hidden_entries(run_dir)


def test_a_report_that_fails_half_way_keeps_the_old_report(run_dir, mnist_dir, monkeypatch):
    make_report(run_dir, data_dir=mnist_dir)
    before = snapshot(run_dir)

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(report_module, "plot_feature_maps", full_disk)  # after three pictures are written
    with pytest.raises(Lenet5Error, match=r"cannot write the report .*report: no space left on the device \(the previous report is kept\)"):
        make_report(run_dir, data_dir=mnist_dir)
    assert snapshot(run_dir) == before and not hidden_entries(run_dir)
    monkeypatch.undo()
    (run_dir / "report" / "stale.png").write_bytes(b"from an older report")
    page = make_report(run_dir, data_dir=mnist_dir)  # a new report replaces the old one whole
    assert page == run_dir / "report" / "index.html" and page.is_file()
    assert not (run_dir / "report" / "stale.png").exists() and not hidden_entries(run_dir)


def test_the_leftovers_of_a_killed_report_are_removed_by_the_next_one(run_dir, mnist_dir):
    import subprocess
    import sys

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(finished.stdout)  # a pid that ran and ended
    leftovers = [run_dir / f".report.{dead}.abc123.building", run_dir / f".report.{dead}.def456.old"]
    for leftover in leftovers:
        (leftover / "sub").mkdir(parents=True)
        (leftover / "sub" / "curves.png").write_bytes(b"half a picture")
    alive = run_dir / f".report.{os.getpid()}.xyz789.building"  # a builder still running: left alone
    alive.mkdir()
    try:
        result = lenet5("report", run_dir, "--data-dir", mnist_dir)
        assert result.returncode == 0, result.stderr
        assert not any(leftover.exists() for leftover in leftovers) and alive.is_dir()
        assert (run_dir / "report" / "index.html").is_file()
    finally:
        alive.rmdir()


def test_a_file_where_the_report_folder_goes_is_left_alone(run_dir, mnist_dir):
    (run_dir / "report").write_bytes(b"the user's own notes")
    assert_one_line_error(lenet5("report", run_dir, "--data-dir", mnist_dir), "is a regular file, not a report folder")
    assert (run_dir / "report").read_bytes() == b"the user's own notes"
