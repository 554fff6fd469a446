"""The main job on the real data: one epoch of the default LeNet-5 on the full MNIST."""

import json

import pytest

from lenet5.cli import main


@pytest.mark.slow
def test_one_epoch_of_the_default_model_on_full_mnist(tmp_path, mnist_dir, capsys):
    run_dir = tmp_path / "run"
    # The default model and settings as they are: its distortions start after epoch 5, so one
    # epoch trains on the digits as drawn (98.15% measured, docs/accuracy.md).
    code = main(["train", "--epochs", "1", "--out", str(run_dir), "--data-dir", str(mnist_dir), "--no-progress"])
    assert code == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test_count"] == 10000
    assert metrics["test_accuracy"] >= 0.980
    assert f"test accuracy: {metrics['test_accuracy'] * 100:.2f}%" in capsys.readouterr().out
