"""Where a command may write a path the user named: `fileio.check_destination`, and each
command that writes one (export -o, train --out, report, the dataset cache).

Every special file here is made for the test in a temporary directory: a FIFO (os.mkfifo),
symbolic links, a socket; nothing touches a real system path.
"""

from __future__ import annotations

import os
import socket
import stat
import tempfile
from pathlib import Path

import pytest

from lenet5.cli import main as cli
from lenet5.files.writing import DestinationError, check_destination

from ..export.conftest import write_run


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lenet5: error: ") and "Traceback" not in err, err
    return err


@pytest.fixture
def places(tmp_path):
    """A regular file, a directory, a FIFO, links to each, and a link to nothing."""
    (tmp_path / "file").write_bytes(b"the user's file")
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link-to-file").symlink_to(tmp_path / "file")
    (tmp_path / "link-to-folder").symlink_to(tmp_path / "folder")
    (tmp_path / "link-to-fifo").symlink_to(tmp_path / "fifo")
    (tmp_path / "dangling").symlink_to(tmp_path / "nothing")
    return tmp_path


FILE_REFUSALS = {
    "fifo": "is a FIFO; lenet5 writes a file only to a new path or a regular file",
    "link-to-file": "is a symbolic link",
    "link-to-fifo": "is a symbolic link",
    "dangling": "is a symbolic link",
    "folder": "is a directory, not a file",
    "file": "already exists; use --overwrite to replace it",
}


@pytest.mark.parametrize("name", FILE_REFUSALS)
def test_a_file_goes_only_to_a_new_path_or_a_regular_file(places, name):
    with pytest.raises(DestinationError, match=FILE_REFUSALS[name]):
        check_destination(places / name, what="a file")
    assert stat.S_ISFIFO(os.stat(places / "fifo").st_mode) and (places / "file").read_bytes() == b"the user's file"


def test_a_path_under_a_file_is_left_to_the_write_which_says_why(run, places, capsys):
    assert check_destination(places / "file" / "under", what="a file") == places / "file" / "under"
    assert export(run, "-o", places / "file" / "under") == 1
    assert f"{places / 'file'} is a file, not a folder" in one_line_error(capsys)


def test_a_regular_file_with_overwrite_and_a_new_path_are_accepted(places):
    assert check_destination(places / "file", what="a file", overwrite=True) == places / "file"
    assert check_destination(places / "new" / "deeper", what="a file") == places / "new" / "deeper"


def test_a_trailing_slash_names_a_directory_not_a_file(places):
    with pytest.raises(DestinationError, match="ends with a slash, which names a directory"):
        check_destination(f"{places / 'newdir'}{os.sep}", what="a file")
    assert check_destination(f"{places / 'newdir'}{os.sep}", what="a folder", folder=True) == places / "newdir"


def test_a_socket_is_refused():
    # AF_UNIX paths are short (108 bytes): a directory of its own under the system's temporary folder.
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "s"
        with socket.socket(socket.AF_UNIX) as server:
            server.bind(str(path))
            with pytest.raises(DestinationError, match="is a socket"):
                check_destination(path, what="a file", overwrite=True)


FOLDER_REFUSALS = {
    "fifo": "is a FIFO, not a folder",
    "file": "is a regular file, not a folder",
    "link-to-fifo": "is a symbolic link",
    "dangling": "is a symbolic link",
    "link-to-folder": "is a symbolic link",  # replaced by a rename: the link would go, not the folder
}


@pytest.mark.parametrize("name", FOLDER_REFUSALS)
def test_a_folder_goes_only_to_a_new_path_or_a_directory(places, name):
    with pytest.raises(DestinationError, match=FOLDER_REFUSALS[name]):
        check_destination(places / name, what="a folder", folder=True)


def test_a_folder_written_into_may_be_a_link_to_a_directory_only(places):
    assert check_destination(places / "link-to-folder", what="a folder", folder=True, into=True)
    assert check_destination(places / "folder", what="a folder", folder=True, into=True)
    for name, found in (("link-to-file", "a symbolic link to a regular file"),
                        ("link-to-fifo", "a symbolic link to a FIFO"), ("dangling", "a symbolic link to nothing")):
        with pytest.raises(DestinationError, match=found):
            check_destination(places / name, what="a folder", folder=True, into=True)


# -- lenet5 export -o ------------------------------------------------------------------------------

@pytest.fixture
def run(tmp_path):
    return write_run(tmp_path / "run", "relu")


def export(*args) -> int:
    pytest.importorskip("onnx")
    return cli.main(["export", *map(str, args)])


def test_export_leaves_a_fifo_a_fifo(run, places, capsys):
    assert export(run, "-o", places / "fifo", "--overwrite") == 1
    assert "is a FIFO" in one_line_error(capsys)
    assert stat.S_ISFIFO(os.lstat(places / "fifo").st_mode)


def test_export_leaves_a_symlink_and_what_it_points_to_alone(run, places, capsys):
    assert export(run, "-o", places / "link-to-file", "--overwrite") == 1
    assert "is a symbolic link" in one_line_error(capsys)
    assert (places / "link-to-file").is_symlink() and (places / "file").read_bytes() == b"the user's file"


def test_export_with_a_trailing_slash_writes_nothing(run, places, capsys):
    assert export(run, "-o", f"{places / 'newdir'}/") == 1
    assert "names a directory" in one_line_error(capsys)
    assert not os.path.lexists(places / "newdir")


def test_export_replaces_an_existing_file_only_with_overwrite(run, places, capsys):
    assert export(run, "-o", places / "file") == 1
    assert "already exists; use --overwrite to replace it" in one_line_error(capsys)
    assert (places / "file").read_bytes() == b"the user's file"
    assert export(run, "-o", places / "file", "--overwrite") == 0
    assert (places / "file").read_bytes().startswith(b"\x08")  # an ONNX model: protobuf field 1, ir_version


def test_export_writes_into_no_run_directory_but_its_own_run_s_export(run, tmp_path, capsys):
    other = write_run(tmp_path / "other", "relu", seed=1)
    before = {path.name: path.read_bytes() for path in other.iterdir()}
    for target in (other / "model.npz", other / "model.onnx", run / "notes.onnx", run / "model.npz"):
        assert export(run, "-o", target, "--overwrite") == 1
        assert "is inside the run directory" in one_line_error(capsys)
    assert {path.name: path.read_bytes() for path in other.iterdir()} == before
    assert sorted(path.name for path in run.iterdir()) == ["model.json", "model.npz"]
    assert export(run) == 0 and (run / "model.onnx").is_file()
    assert export(run) == 1
    assert "already exists; use --overwrite" in one_line_error(capsys)
    assert export(run, "--overwrite") == 0


def test_a_temporary_file_that_cannot_be_made_is_named_as_such(run, tmp_path, monkeypatch, capsys):
    """A directory that takes no new file (as /proc, simulated): the error says it was the file
    beside the target that could not be made, not that the target is missing."""
    def refuse(*args, dir=None, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", os.path.join(dir, ".x.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    (tmp_path / "version").write_text("kept")
    assert export(run, "-o", tmp_path / "version", "--overwrite") == 1
    assert f"cannot write {tmp_path / 'version'}: No such file or directory (creating a file in {tmp_path})" \
        in one_line_error(capsys)


# -- train --out, report ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["fifo", "file", "link-to-file", "dangling"])
def test_train_refuses_an_out_that_is_not_a_directory(places, name, capsys):
    assert cli.main(["train", "--model", "relu", "--out", str(places / name), "--no-progress"]) == 1
    assert "not a run directory" in one_line_error(capsys)
    assert stat.S_ISFIFO(os.lstat(places / "fifo").st_mode) and (places / "file").read_bytes() == b"the user's file"


@pytest.mark.parametrize("name, refusal", [("fifo", "is a FIFO, not a report folder"),
                                           ("link-to-folder", "is a symbolic link")])
def test_report_leaves_a_fifo_or_a_link_where_its_folder_goes(run, places, name, refusal, capsys):
    pytest.importorskip("matplotlib")
    if name == "fifo":
        os.mkfifo(run / "report")
    else:
        (run / "report").symlink_to(places / name)
    assert cli.main(["report", str(run)]) == 1
    assert refusal in one_line_error(capsys)
    assert os.path.lexists(run / "report") and list((places / "folder").iterdir()) == []
