"""A model whose outputs are not finite numbers is refused by every command that runs it, in
the same words (`lenet5.run.outputs.check_outputs`), never evaluated into "loss nan"."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from lenet5.cli import main as cli
from lenet5.files.weights import load_model, save_model
from lenet5.run.evaluation import evaluate
from lenet5.run.outputs import OutputsError

from ..export.conftest import synthetic_digits, write_run

REFUSAL = "the model's outputs for a blank and an all-ink image are not finite numbers"


def broken_run(tmp_path, how: str):
    """A run whose weights are all finite, but whose outputs are not."""
    run = write_run(tmp_path / how, "lenet5" if how == "negative running_var" else "relu")
    model, metadata = load_model(run)
    if how == "negative running_var":
        norm = next(module for _, module in model.named_modules() if type(module).__name__ == "BatchNorm2D")
        norm.running_var[:] = -1.0
    else:
        model.layers[0].weight.value[...] = np.float32(3e38)
    save_model(run / "model.npz", model, {key: value for key, value in metadata.items()
                                          if key not in ("format", "format_version", "kind", "architecture")})
    return run


def commands(run, tmp_path):
    digit = tmp_path / "digit.png"
    digit.write_bytes(b"read only once the model has been accepted")
    yield ["evaluate", str(run)]
    yield ["predict", str(run), str(digit)]
    yield ["report", str(run)]
    if importlib.util.find_spec("onnx") is not None:  # without it, export says which extra to install
        yield ["export", str(run), "-o", str(tmp_path / "model.onnx")]


@pytest.mark.parametrize("how", ["3e38 weights", "negative running_var"])
def test_every_command_that_runs_the_model_refuses_it_in_the_same_words(tmp_path, how, capsys):
    run = broken_run(tmp_path, how)
    for args in commands(run, tmp_path):
        assert cli.main(args) == 1, args
        err = capsys.readouterr().err
        assert err == f"lenet5: error: {run / 'model.npz'}: {REFUSAL} (weights whose products overflow, or " \
                      "BatchNorm statistics that are not valid); this model cannot be used\n", (args, err)
    assert sorted(path.name for path in run.iterdir()) == ["model.json", "model.npz"]
    assert not (tmp_path / "model.onnx").exists()


class Overflowing:
    """A model that passes the load-time probe and overflows on real images only."""

    def predict_logits(self, images, batch_size=64):
        logits = np.zeros((len(images), 10), np.float32)
        logits[-1, 3] = np.inf
        return logits


def test_evaluate_refuses_logits_that_are_not_finite_on_the_data_itself():
    images, labels = synthetic_digits(3)[:, None] / 255.0, np.array([1, 2, 3])
    with pytest.raises(OutputsError, match="^run/x: the model's outputs for 3 images are not finite numbers"):
        evaluate(Overflowing(), images, labels, where="run/x")


def test_a_healthy_model_is_loaded_and_evaluated(tmp_path):
    from lenet5.run.directory import load_run
    from lenet5.run.preprocessing import preprocess_like

    model, metadata = load_run(write_run(tmp_path / "run", "lenet5"))
    images = synthetic_digits(20)
    metrics = evaluate(model, preprocess_like(images, metadata), np.arange(20) % 10)
    assert np.isfinite(metrics["loss"]) and metrics["count"] == 20
