"""`lenet5 predict`: directories, `--json`, and the preprocessing verdict shown when it matters."""

import json

import numpy as np
import pytest

from ..helpers.commands import assert_one_line_error, lenet5
from ..image.test_digit import clean_seven, draw_seven, side_by_side
from ..run.test_classifier import untrained_run

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return untrained_run(tmp_path_factory.mktemp("predict") / "run")


@pytest.fixture
def folder(tmp_path):
    folder = tmp_path / "digits"
    folder.mkdir()
    Image.fromarray(draw_seven()).save(folder / "b-seven.png")
    Image.fromarray(side_by_side(clean_seven(), clean_seven())).save(folder / "a-two-sevens.jpg")
    (folder / "notes.txt").write_text("not a picture")
    (folder / "inner").mkdir()
    return folder


def test_json_has_one_entry_per_image_of_a_directory_sorted(run_dir, folder):
    result = lenet5("predict", run_dir, folder, "--json", "--top", "2", check=True)
    document = json.loads(result.stdout)
    assert document["model"] == "lenet5"
    assert [entry["file"] for entry in document["images"]] == [str(folder / "a-two-sevens.jpg"),
                                                               str(folder / "b-seven.png")]
    assert document["skipped"] == [str(folder / "inner"), str(folder / "notes.txt")]
    assert f"skipped {folder / 'notes.txt'} (not an image file)" in result.stderr
    for entry in document["images"]:
        probabilities = np.array(entry["probabilities"])
        assert probabilities.shape == (10,) and probabilities.sum() == pytest.approx(1.0)
        assert entry["label"] == int(probabilities.argmax()) and len(entry["top"]) == 2
        assert entry["top"][0] == {"label": entry["label"], "name": str(entry["label"]),
                                   "probability": pytest.approx(probabilities.max())}
    verdicts = [entry["preprocessing"]["verdict"] for entry in document["images"]]
    assert verdicts == ["several blobs", "one digit"]
    assert document["images"][0]["preprocessing"]["confidence"] < 0.5


def test_text_output_shows_the_verdict_only_when_it_is_not_one_clean_digit(run_dir, folder):
    lines = lenet5("predict", run_dir, folder, check=True).stdout.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{folder / 'a-two-sevens.jpg'}: ") and "[preprocessing: several blobs" in lines[0]
    assert lines[1].startswith(f"{folder / 'b-seven.png'}: ") and "preprocessing" not in lines[1]


def test_an_unreadable_image_is_an_entry_with_its_error_and_the_others_are_still_read(run_dir, folder):
    (folder / "c-broken.png").write_bytes(b"\x89PNG broken")
    result = lenet5("predict", run_dir, folder, "--json")
    assert result.returncode == 1
    entries = json.loads(result.stdout)["images"]
    assert [("error" in entry) for entry in entries] == [False, False, True]
    assert "c-broken.png: cannot read image" in entries[2]["error"]
    assert "c-broken.png: cannot read image" in result.stderr


def test_a_directory_without_images_is_a_one_line_error(run_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(lenet5("predict", run_dir, tmp_path / "empty"), "empty: no image files in this directory")


def test_a_line_break_in_a_file_s_name_is_quoted_so_each_image_stays_one_line(run_dir, tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    Image.fromarray(draw_seven()).save(folder / "a\nseven.png")
    Image.fromarray(draw_seven()).save(folder / "plain seven.png")
    (folder / "b\nbroken.png").write_bytes(b"\x89PNG broken")
    (folder / "c\tnotes.txt").write_text("not a picture")
    result = lenet5("predict", run_dir, folder)
    lines = result.stdout.splitlines()
    assert result.returncode == 1 and len(lines) == 2, result.stdout
    assert lines[0].startswith(repr(str(folder / "a\nseven.png")) + ": ")
    assert lines[1].startswith(f"{folder / 'plain seven.png'}: ")  # quoted only when needed
    errors = result.stderr.splitlines()
    assert len(errors) == 2, result.stderr
    broken, notes = str(folder / "b\nbroken.png"), str(folder / "c\tnotes.txt")
    assert errors[1] == f"lenet5: error: {broken!r}: cannot read image (not a format Pillow knows; expected PNG, " \
                        "JPEG, GIF, BMP, TIFF, WebP...)"
    assert errors[0] == f"lenet5: note: skipped {notes!r} (not an image file)"
