"""`lenet5 report`: the pictures exist, hold the right numbers, and the page renders."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")
PIL = pytest.importorskip("PIL.Image")

from lenet5.errors import Lenet5Error  # noqa: E402
from lenet5.files.weights import load_model  # noqa: E402
from lenet5.report import make_report  # noqa: E402

from ..helpers.commands import lenet5


@pytest.fixture(scope="module", params=["lenet5", "classic"])
def report(request, tmp_path_factory, mnist_dir):
    run_dir = tmp_path_factory.mktemp("report") / request.param
    subprocess.run([sys.executable, "-m", "lenet5", "train", "--model", request.param, "--train-limit", "1000",
                    "--validation", "200", "--test-limit", "200", "--epochs", "2", "--no-progress",
                    "--out", str(run_dir), "--data-dir", str(mnist_dir)], check=True, capture_output=True)
    page = make_report(run_dir, index=3, data_dir=mnist_dir)
    return run_dir, page


def test_every_picture_is_a_real_png(report):
    run_dir, page = report
    names = ["training_curves.png", "confusion_matrix.png", "filters_conv1.png", "filters_conv2.png",
             "feature_maps.png", "confident_errors.png", "distortions.png"]
    for name in names:
        with PIL.open(run_dir / "report" / name) as image:
            image.verify()
        with PIL.open(run_dir / "report" / name) as image:
            assert image.format == "PNG" and image.width >= 400 and image.height >= 200, name
    assert page.name == "index.html" and page.stat().st_size > 10_000


def test_the_numbers_behind_the_pictures(report):
    run_dir, _ = report
    summary = json.loads((run_dir / "report" / "report.json").read_text())
    confusion = np.array(summary["confusion_matrix"])
    assert confusion.sum() == 10000  # the whole test set
    assert np.trace(confusion) / 10000 == pytest.approx(summary["accuracy"])
    model, _ = load_model(run_dir)
    shape = model.input_shape
    expected = {}
    for name, layer in zip(model.layer_names, model.layers):
        shape = layer.output_shape(shape)
        expected[f"{name} ({type(layer).__name__})"] = list(shape)
    for stage, stage_shape in summary["feature_map_shapes"].items():
        assert expected[stage] == stage_shape, stage
    windowed = [n for n in expected if "Conv2D" in n or "Pool" in n]
    assert list(summary["feature_map_shapes"]) == windowed  # every convolution and pooling stage


def test_a_run_without_history_still_gets_the_model_pictures(report, tmp_path, mnist_dir):
    run_dir, _ = report
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("model.npz", "model.json"):
        shutil.copy(run_dir / name, bare / name)
    make_report(bare, data_dir=mnist_dir)
    assert not (bare / "report" / "training_curves.png").exists()
    assert (bare / "report" / "filters_conv1.png").exists() and (bare / "report" / "index.html").exists()


def test_missing_or_partial_run_directories(tmp_path):
    with pytest.raises(Lenet5Error, match="no such run directory"):
        make_report(tmp_path / "nothing")
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "checkpoint.npz").write_bytes(b"")
    with pytest.raises(Lenet5Error, match="no model.npz"):
        make_report(tmp_path / "partial")
    result = lenet5("report", tmp_path / "nothing")
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1


def test_the_page_renders_in_headless_chromium_with_every_image_loaded(report, tmp_path):
    _, page = report
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed; `make test` installs Debian's chromium package")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert 'data-images-loaded="7/7"' in dom.stdout, dom.stderr[-2000:]  # with distortions.png
    assert "Uncaught" not in dom.stderr and "CONSOLE" not in dom.stderr.upper().replace("CONSOLE(", "")
    shot = tmp_path / "page.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1200,3000", page.as_uri()],
                   capture_output=True, timeout=120)
    with PIL.open(shot) as image:
        pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 10  # not a blank page


@pytest.mark.parametrize("name", ["tanh", "relu", "simple-cnn", "lenet5-1998"])
def test_every_model_of_the_zoo_gets_a_report(name, tmp_path, mnist_dir):
    from lenet5.files.weights import save_model
    from lenet5.zoo.models import build_model, get_spec

    model = build_model(name, seed=0)
    spec = get_spec(model.name)
    save_model(tmp_path / "model.npz", model, {
        "dataset": "mnist", "class_names": [str(i) for i in range(10)],
        "preprocessing": {"method": spec.preprocessing.method, "pad": spec.preprocessing.pad,
                          "mean": 0.1307, "std": 0.3081},
    })
    make_report(tmp_path, data_dir=mnist_dir)
    summary = json.loads((tmp_path / "report" / "report.json").read_text())
    assert "filters_conv1.png" in summary["pictures"] and "feature_maps.png" in summary["pictures"]
    assert np.array(summary["confusion_matrix"]).sum() == 10000


def test_a_1998_report_gives_the_test_loss_the_run_trained_on(tmp_path, mnist_dir):
    """lenet5-1998 trains on the MAP criterion: its report's test loss is MAP's, as `lenet5
    evaluate` gives it, not softmax cross-entropy's."""
    run_dir = tmp_path / "lenet5-1998"
    subprocess.run([sys.executable, "-m", "lenet5", "train", "--model", "lenet5-1998", "--train-limit", "400",
                    "--validation", "0", "--test-limit", "100", "--epochs", "1", "--no-progress",
                    "--out", str(run_dir), "--data-dir", str(mnist_dir)], check=True, capture_output=True)
    make_report(run_dir, data_dir=mnist_dir)
    summary = json.loads((run_dir / "report" / "report.json").read_text())
    evaluated = json.loads(lenet5("evaluate", run_dir, "--json", "--data-dir", mnist_dir).stdout)
    assert summary["loss"] == pytest.approx(evaluated["loss"], rel=1e-9)
    assert summary["accuracy"] == evaluated["accuracy"]
