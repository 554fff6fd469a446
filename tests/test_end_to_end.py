"""The main job on the real data: one epoch of the default LeNet-5 on the full MNIST."""

import json

import pytest

import lenet5
from lenet5.cli.main import main


@pytest.mark.slow
def test_one_epoch_of_the_default_model_on_full_mnist(tmp_path, mnist_dir, capsys):
    run_dir = tmp_path / "run"
    # The default model and settings as they are: its distortions start after epoch 5, so one
    # epoch trains on the digits as drawn. Measured over seeds 0-4 (`lenet5 train --epochs 1
    # --seed S`): 97.92-98.30% on the compiled kernels (mean 98.11%), 98.05-98.29% on the NumPy
    # steps (mean 98.13%): the two engines round differently, so the seed the test trains
    # lands anywhere in that spread. The floor sits just below its lowest point; a model that
    # learns nothing (10%) or diverges lands far below it.
    code = main(["train", "--epochs", "1", "--out", str(run_dir), "--data-dir", str(mnist_dir), "--no-progress"])
    assert code == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test_count"] == 10000
    assert metrics["test_accuracy"] >= 0.978
    assert f"test accuracy: {metrics['test_accuracy'] * 100:.2f}%" in capsys.readouterr().out


@pytest.mark.slow
def test_lenet5_wide_reaches_99_5_percent_on_full_mnist(tmp_path, mnist_dir):
    # Issue 17's recipe beyond the paper, run as the README gives it: at most 70,000
    # parameters, at least 99.5% (99.61% measured on the development machine; another
    # machine's BLAS may round differently, hence the bar and not the exact number).
    run_dir = tmp_path / "wide"
    code = main(["train", "--model", "lenet5-wide", "--validation", "0", "--out", str(run_dir),
                 "--data-dir", str(mnist_dir), "--no-progress"])
    assert code == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test_count"] == 10000
    assert metrics["test_accuracy"] >= 0.995
    assert lenet5.load(run_dir).model.num_parameters() <= 70_000
