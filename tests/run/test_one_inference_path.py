"""One inference path: `lenet5 predict`, `lenet5 serve`, `lenet5 evaluate`, `lenet5 report`
and `lenet5.load(run)` run a run's model through `Classifier.logits`, so for the same image
they give the same numbers, to the last bit, not "close"."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from lenet5.data import load_dataset
from lenet5.nn import softmax
from lenet5.run.classifier import load
from lenet5.run.evaluation import metrics_of
from lenet5.zoo.models import get_spec

from ..cli.test_main import small_run  # noqa: F401  (a fixture)
from ..helpers.commands import lenet5


def drawn_digits(count: int) -> list[bytes]:
    """PNG files of MNIST-like digits drawn on paper of different greys."""
    import io

    from PIL import Image, ImageDraw

    files = []
    for number in range(count):
        image = Image.new("L", (90, 120), 230 - 10 * number)
        ImageDraw.Draw(image).line([(20, 20), (70, 20), (35 + 5 * number, 105)], fill=20, width=9)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        files.append(buffer.getvalue())
    return files


def library_probabilities(run_dir, path) -> list[float]:
    """`lenet5.load(run).predict(path)` in a process of its own, as a user's script runs it."""
    script = ("import json, sys, lenet5; "
              "print(json.dumps(lenet5.load(sys.argv[1]).predict(sys.argv[2]).probabilities.tolist()))")
    done = subprocess.run([sys.executable, "-c", script, str(run_dir), str(path)], capture_output=True, text=True,
                          timeout=300, check=True)
    return json.loads(done.stdout)


def test_predict_serve_and_the_library_give_identical_probabilities(small_run, tmp_path):
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    import httpx

    from ..helpers.commands import Server

    run_dir, _ = small_run
    paths = []
    for number, data in enumerate(drawn_digits(3)):
        paths.append(tmp_path / f"{number}.png")
        paths[-1].write_bytes(data)
    # One image a call: float32 sums depend on the batch an image is computed in, and the
    # service, asked one at a time, computes each alone.
    with Server(run_dir) as server, httpx.Client(base_url=server.url) as client:
        for path in paths:
            served = client.post("/predict", content=path.read_bytes(),
                                 headers={"Content-Type": "image/png"}).json()["probabilities"]
            printed = json.loads(lenet5("predict", run_dir, path, "--json", check=True).stdout)
            assert printed["images"][0]["probabilities"] == served == library_probabilities(run_dir, path)


def test_evaluate_report_and_the_library_give_identical_metrics(small_run, mnist_dir):
    run_dir, _ = small_run
    classifier = load(run_dir)
    test = load_dataset("mnist", data_dir=mnist_dir)
    logits = classifier.logits(test.test_images)
    library = metrics_of(logits, test.test_labels, loss_fn=get_spec(classifier.metadata["architecture"]).make_loss())
    assert library["accuracy"] == float(
        (softmax(logits.astype(np.float64)).argmax(axis=1) == test.test_labels).mean())

    evaluated = json.loads(lenet5("evaluate", run_dir, "--data-dir", mnist_dir, "--json", check=True).stdout)
    lenet5("report", run_dir, "--data-dir", mnist_dir, check=True)
    reported = json.loads((run_dir / "report" / "report.json").read_text())

    assert evaluated["accuracy"] == reported["accuracy"] == library["accuracy"]
    assert evaluated["loss"] == reported["loss"] == library["loss"]
    assert evaluated["confusion_matrix"] == reported["confusion_matrix"] == library["confusion_matrix"]
