"""`lenet5 train --loss`: the 1998 network trained on the paper's MLE criterion instead of MAP,
the choice recorded in its run and used by every command that gives a loss value; a model
with a dense output refuses it in one line."""

import json
import shutil

import pytest

from lenet5.data import load_dataset
from lenet5.files.weights import load_arrays, save_arrays
from lenet5.nn import MAPLoss, MLELoss
from lenet5.run.classifier import load
from lenet5.training.checkpoint import Checkpoint

from ..helpers.commands import assert_one_line_error, lenet5

TINY_1998 = ["--model", "lenet5-1998", "--train-limit", "200", "--test-limit", "100", "--epochs", "1",
             "--no-progress"]


@pytest.fixture(scope="module")
def mle_run(tmp_path_factory, mnist_dir):
    run_dir = tmp_path_factory.mktemp("mle") / "run"
    result = lenet5("train", *TINY_1998, "--loss", "mle", "--out", run_dir, "--data-dir", mnist_dir, check=True)
    return run_dir, result


@pytest.fixture(scope="module")
def mnist_test(mnist_dir):
    test = load_dataset("mnist", data_dir=mnist_dir)
    return test.test_images, test.test_labels


def copy_of(run_dir, tmp_path):
    return shutil.copytree(run_dir, tmp_path / "run")


def rewrite_saved_loss(run_dir, loss) -> None:
    """The run's saved settings with `loss` in place of its own (None: without the field, as a
    run saved before there was a choice), in model.npz, model.json and checkpoint.npz alike."""
    def rewritten(hyperparameters):
        hyperparameters.pop("loss")
        return hyperparameters if loss is None else {**hyperparameters, "loss": loss}

    for name, kind in (("checkpoint.npz", "checkpoint"), ("model.npz", "model")):
        arrays, metadata = load_arrays(run_dir / name, kind=kind)
        metadata["hyperparameters"] = rewritten(metadata["hyperparameters"])
        save_arrays(run_dir / name, arrays, metadata)
    settings = json.loads((run_dir / "model.json").read_text())
    settings["hyperparameters"] = rewritten(settings["hyperparameters"])
    (run_dir / "model.json").write_text(json.dumps(settings))


def test_the_chosen_loss_is_said_trained_with_and_recorded(mle_run, mnist_test):
    run_dir, result = mle_run
    assert "sdlm lr 0.0005 (lecun1998), mle loss, no distortions" in result.stdout.splitlines()[0]
    assert json.loads((run_dir / "model.json").read_text())["hyperparameters"]["loss"] == "mle"
    assert Checkpoint(run_dir / "checkpoint.npz").config.loss == "mle"
    # The test loss it printed into its metrics is MLE's: the mean penalty of the correct class.
    images, labels = mnist_test
    logits = load(run_dir).logits(images[:100])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test_loss"] == pytest.approx(MLELoss()(logits, labels[:100]), rel=1e-5)
    assert metrics["test_loss"] != pytest.approx(MAPLoss(0.1)(logits, labels[:100]), rel=1e-3)


def test_evaluate_and_load_give_loss_values_in_the_runs_criterion(mle_run, mnist_dir, mnist_test):
    run_dir, _ = mle_run
    classifier = load(run_dir)
    assert isinstance(classifier.loss_fn, MLELoss)
    images, labels = mnist_test
    logits = classifier.logits(images)
    evaluated = json.loads(lenet5("evaluate", run_dir, "--json", "--data-dir", mnist_dir, check=True).stdout)
    assert evaluated["loss"] == pytest.approx(MLELoss()(logits, labels), rel=1e-9)
    assert evaluated["loss"] != pytest.approx(MAPLoss(0.1)(logits, labels), rel=1e-3)


def test_the_report_gives_the_test_loss_in_the_runs_criterion(mle_run, tmp_path, mnist_dir, mnist_test):
    pytest.importorskip("matplotlib")
    run_dir = copy_of(mle_run[0], tmp_path)
    lenet5("report", run_dir, "--data-dir", mnist_dir, check=True)
    summary = json.loads((run_dir / "report" / "report.json").read_text())
    images, labels = mnist_test
    assert summary["loss"] == pytest.approx(MLELoss()(load(run_dir).logits(images), labels), rel=1e-9)


def test_a_resumed_run_keeps_its_loss_and_refuses_another(mle_run, tmp_path, mnist_dir):
    run_dir = copy_of(mle_run[0], tmp_path)
    refused = lenet5("train", "--out", run_dir, "--resume", "--epochs", "2", "--loss", "map", "--data-dir", mnist_dir)
    assert_one_line_error(refused, "--loss cannot change them")
    resumed = lenet5("train", "--out", run_dir, "--resume", "--epochs", "2", "--loss", "mle", "--no-progress",
                     "--data-dir", mnist_dir, check=True)
    assert "epoch  2/2" in resumed.stdout
    assert Checkpoint(run_dir / "checkpoint.npz").config.loss == "mle"
    assert json.loads((run_dir / "model.json").read_text())["hyperparameters"]["loss"] == "mle"


def test_a_run_saved_before_the_choice_reads_as_map_and_resumes_on_it(mle_run, tmp_path, mnist_dir, mnist_test):
    run_dir = copy_of(mle_run[0], tmp_path)
    rewrite_saved_loss(run_dir, None)
    assert isinstance(load(run_dir).loss_fn, MAPLoss)
    images, labels = mnist_test
    evaluated = json.loads(lenet5("evaluate", run_dir, "--json", "--data-dir", mnist_dir, check=True).stdout)
    assert evaluated["loss"] == pytest.approx(MAPLoss(0.1)(load(run_dir).logits(images), labels), rel=1e-9)
    assert Checkpoint(run_dir / "checkpoint.npz").config.loss == "map"
    refused = lenet5("train", "--out", run_dir, "--resume", "--epochs", "2", "--loss", "mle", "--data-dir", mnist_dir)
    assert_one_line_error(refused, "--loss cannot change them")


def test_a_saved_loss_its_model_does_not_accept_is_one_line_naming_the_field(mle_run, tmp_path, mnist_dir):
    run_dir = copy_of(mle_run[0], tmp_path)
    rewrite_saved_loss(run_dir, "softmax")
    assert_one_line_error(lenet5("evaluate", run_dir, "--data-dir", mnist_dir),
                          "metadata field 'hyperparameters.loss' must be map or mle", "found \"softmax\"")
    assert_one_line_error(lenet5("train", "--out", run_dir, "--resume", "--epochs", "2", "--data-dir", mnist_dir),
                          "model 'lenet5-1998' cannot train with loss 'softmax': it accepts map or mle")


def test_a_model_with_a_dense_output_refuses_the_loss_in_one_line(tmp_path):
    result = lenet5("train", "--model", "lenet5", "--loss", "mle", "--out", tmp_path / "run")
    assert_one_line_error(result, "model 'lenet5' cannot train with loss 'mle': it accepts softmax",
                          "needs an RBF output: lenet5-1998")
    assert not (tmp_path / "run").exists()
    unknown = lenet5("train", "--model", "lenet5-1998", "--loss", "softmax", "--out", tmp_path / "run")
    assert_one_line_error(unknown, "argument --loss: invalid choice: 'softmax'", code=2)
