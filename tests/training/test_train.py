"""The trainer: its step, the files of a run, determinism, resume, non-finite loss, bad settings."""

import csv
import io
import json
import os
import signal
import sys
from dataclasses import asdict

import numpy as np
import pytest

from lenet5.errors import CheckpointError, Lenet5Error, RunDirError
from lenet5.fast import FastModel
from lenet5.files.weights import load_arrays, load_model, save_arrays
from lenet5.nn import Dropout, SoftmaxCrossEntropy
from lenet5.run.engine import make_engine
from lenet5.training.checkpoint import Checkpoint
from lenet5.training.recipe import TrainConfig, make_optimizer, make_schedule, seeds
from lenet5.training.run_dir import prepare_run_dir
from lenet5.training.splits import DataSplits
from lenet5.training.trainer import Trainer, TrainingError
from lenet5.zoo.models import MODELS, build_model


def synthetic_splits(n_train=192, n_val=32, n_test=48, side=28, seed=0) -> DataSplits:
    """Ten classes a small CNN can tell apart: a bright square whose place encodes the class."""
    rng = np.random.default_rng(seed)

    def make(count):
        labels = rng.integers(0, 10, count)
        images = rng.normal(0, 0.3, (count, 1, side, side)).astype(np.float32)
        for index, label in enumerate(labels):
            row, col = divmod(int(label), 5)
            images[index, 0, 4 + row * 10: 10 + row * 10, 2 + col * 5: 6 + col * 5] += 2.0
        return images, labels.astype(np.int64)

    (x, y), (xv, yv), (xt, yt) = make(n_train), make(n_val), make(n_test)
    return DataSplits(x, y, xv, yv, xt, yt, [str(i) for i in range(10)])


def small_config(**overrides) -> TrainConfig:
    settings = dict(model="lenet5", epochs=3, batch_size=32, optimizer="adam", lr=3e-3, schedule="cosine",
                    validation=32, seed=7)
    settings.update(overrides)
    return TrainConfig(**settings)


def make_trainer(run_dir, config, splits, engine=None, log_name="log.txt", **options) -> Trainer:
    """What `lenet5 train` assembles: the model, its optimiser and the engine, then a Trainer."""
    config = config.resolved()
    model = build_model(config.model, seed=seeds(config).init)
    optimizer = make_optimizer(config, model.parameters())
    engine = engine(model) if engine else make_engine(model)
    return Trainer(model, optimizer, make_schedule(config), SoftmaxCrossEntropy(), engine, config=config,
                   splits=splits, run_dir=run_dir, progress=False, log=open(run_dir / log_name, "w"), **options)


def fit_until_interrupted(trainer, interrupt_at_step: int) -> None:
    """Train until Ctrl-C arrives in the middle of step `interrupt_at_step` (SIGINT sent from
    inside the optimiser's step); the trainer finishes that step and checkpoints."""
    original_step, calls = trainer.optimizer.step, {"n": 0}

    def step_then_interrupt():
        original_step()
        calls["n"] += 1
        if calls["n"] == interrupt_at_step:
            os.kill(os.getpid(), signal.SIGINT)

    trainer.optimizer.step = step_then_interrupt
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()


def run(tmp_path, name="run", splits=None, **overrides):
    run_dir = tmp_path / name
    prepare_run_dir(run_dir, resume=False, overwrite=False)
    trainer = make_trainer(run_dir, small_config(**overrides), splits or synthetic_splits())
    trainer.fit()
    metrics = trainer.finish()
    return trainer, metrics, run_dir


def test_a_run_writes_every_file_and_learns(tmp_path):
    trainer, metrics, run_dir = run(tmp_path, epochs=4)
    for name in ("model.npz", "model.json", "checkpoint.npz", "history.csv", "history.json", "metrics.json"):
        assert (run_dir / name).is_file(), name
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["test_accuracy"] == metrics["test_accuracy"]
    assert saved["test_accuracy"] > 0.5  # chance is 0.1
    assert saved["test_count"] == 48
    assert np.array(saved["confusion_matrix"]).sum() == 48
    rows = list(csv.DictReader(open(run_dir / "history.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert json.loads((run_dir / "history.json").read_text()) == trainer.history
    model, metadata = load_model(run_dir)
    assert metadata["architecture"] == "lenet5" and metadata["metrics"]["test_accuracy"] == saved["test_accuracy"]
    assert "workers" not in metadata["hyperparameters"]  # training runs in one process: no count to save
    for name, value in trainer.model.state_dict().items():
        assert np.array_equal(model.state_dict()[name], value), name


def test_the_step_is_forward_loss_backward_step_through_the_engine(tmp_path):
    calls = []

    class Recording(FastModel):  # the trainer sees only the engine's interface
        def forward(self, x, distortion=None):
            calls.append(("forward", len(x)))
            return super().forward(x, distortion)

        def backward(self, dout, input_grad=True):
            calls.append(("backward", dout.shape, input_grad))
            return super().backward(dout, input_grad=input_grad)

    run_dir = tmp_path / "recorded"
    prepare_run_dir(run_dir, resume=False, overwrite=False)
    trainer = make_trainer(run_dir, small_config(epochs=1, validation=0), synthetic_splits(n_train=40),
                           engine=Recording)
    step = trainer.optimizer.step
    trainer.optimizer.step = lambda: (calls.append(("step",)), step())
    trainer.fit()
    assert calls == [("forward", 32), ("backward", (32, 10), False), ("step",),
                     ("forward", 8), ("backward", (8, 10), False), ("step",)]


def test_same_seed_gives_bit_identical_weights_and_metrics(tmp_path):
    first, metrics_a, _ = run(tmp_path, "a")
    second, metrics_b, _ = run(tmp_path, "b")
    for name, value in first.model.state_dict().items():
        assert np.array_equal(second.model.state_dict()[name], value), name
    strip = lambda history: [{k: v for k, v in row.items() if k not in ("seconds", "images_per_second")}
                             for row in history]
    assert strip(first.history) == strip(second.history)
    assert metrics_a["test_accuracy"] == metrics_b["test_accuracy"]
    third, _, _ = run(tmp_path, "c", seed=8)
    assert not np.array_equal(third.model.state_dict()["conv1.weight"], first.model.state_dict()["conv1.weight"])


@pytest.mark.parametrize("interrupt_at_step, augment", [(3, 0), (6, 0), (13, 0), (4, 2), (13, 2)])
def test_resume_after_interrupt_is_bit_identical(tmp_path, interrupt_at_step, augment):
    # steps 3: mid-epoch; 6: an epoch boundary; 13: the last epoch; 4 and 13 with random
    # shifts. The model has two Dropout layers.
    splits = synthetic_splits()
    shifts = dict(augment="shift" if augment else "none", augment_strength=augment / 2,  # ±augment pixels
                  augment_delay=0)
    config = small_config(optimizer="momentum", **shifts)
    reference, _, _ = run(tmp_path, "reference", splits=splits, optimizer="momentum", **shifts)

    run_dir = tmp_path / "interrupted"
    prepare_run_dir(run_dir, resume=False, overwrite=False)
    trainer = make_trainer(run_dir, config, splits)
    fit_until_interrupted(trainer, interrupt_at_step)
    checkpoint = Checkpoint(run_dir / "checkpoint.npz")
    assert set(checkpoint.training["dropout_rng_states"]) == {
        name for name, module in trainer.model.named_modules() if isinstance(module, Dropout)} != set()
    resumed = make_trainer(run_dir, checkpoint.config, splits, log_name="log2")
    resumed.restore()
    assert resumed.epoch * 6 + resumed.step == interrupt_at_step  # 6 batches an epoch
    resumed.fit()
    for name, value in reference.model.state_dict().items():
        assert np.array_equal(resumed.model.state_dict()[name], value), name
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in reference.history]
    assert resumed.optimizer.steps == reference.optimizer.steps


def test_a_checkpoint_whose_step_is_past_its_epoch_s_end_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    prepare_run_dir(run_dir, resume=False, overwrite=False)
    trainer = make_trainer(run_dir, small_config(), synthetic_splits())
    fit_until_interrupted(trainer, 3)
    arrays, metadata = load_arrays(run_dir / "checkpoint.npz")
    metadata["training"]["step"] = 10**9
    save_arrays(run_dir / "checkpoint.npz", arrays, metadata)
    resumed = make_trainer(run_dir, small_config(), synthetic_splits(), log_name="log2")
    before = {name: value.copy() for name, value in resumed.model.state_dict().items()}
    with pytest.raises(CheckpointError, match="checkpoint.npz: training step 1,000,000,000 is past the end of "
                                              "epoch 1, which has 6 batches \\(192 training images in batches of 32\\)"):
        resumed.restore()
    assert all(np.array_equal(resumed.model.state_dict()[name], value) for name, value in before.items())


def test_a_checkpoint_restores_only_into_the_model_it_was_saved_from(tmp_path):
    _, _, run_dir = run(tmp_path, epochs=1)
    other = make_trainer(run_dir, small_config(model="classic"), synthetic_splits(), log_name="log2")
    with pytest.raises(CheckpointError, match="checkpoint is for model 'lenet5', not 'classic'"):
        other.restore()


def test_non_finite_loss_stops_with_epoch_and_step_and_keeps_the_last_checkpoint(tmp_path):
    splits = synthetic_splits()
    run_dir = tmp_path / "nan"
    prepare_run_dir(run_dir, resume=False, overwrite=False)
    trainer = make_trainer(run_dir, small_config(epochs=3), splits)
    trainer.fit()  # three good epochs, then poison the data of a fourth
    good = load_arrays(run_dir / "checkpoint.npz", kind="checkpoint")[0]
    trainer.config.epochs = 4
    trainer.splits.x_train[5:] = np.nan
    with pytest.raises(TrainingError) as info:
        trainer.fit()
    message = str(info.value)
    assert "non-finite loss at epoch 4, step 1" in message and "checkpoint" in message
    kept = load_arrays(run_dir / "checkpoint.npz", kind="checkpoint")[0]
    assert all(np.array_equal(kept[k], good[k]) for k in good)


def test_a_non_finite_gradient_under_a_finite_loss_stops_before_the_weights_move(tmp_path, monkeypatch):
    run_dir = tmp_path / "nan-grad"
    prepare_run_dir(run_dir, resume=False, overwrite=False)
    trainer = make_trainer(run_dir, small_config(epochs=1), synthetic_splits())
    backward = trainer.engine.backward

    def poisoned(dout, input_grad=True):
        result = backward(dout, input_grad=input_grad)
        trainer.optimizer.parameters[-1].grad[0] = np.inf  # in the flat buffer the check reads
        return result

    monkeypatch.setattr(trainer.engine, "backward", poisoned)
    before = {name: p.value.copy() for name, p in trainer.model.named_parameters()}
    with pytest.raises(TrainingError, match="non-finite gradient at epoch 1, step 1"):
        trainer.fit()
    assert all(np.array_equal(p.value, before[name]) for name, p in trainer.model.named_parameters())


def test_run_directory_is_never_mixed_up(tmp_path):
    run(tmp_path, "done", epochs=1)
    with pytest.raises(RunDirError, match="already holds a run"):
        prepare_run_dir(tmp_path / "done", resume=False, overwrite=False)
    with pytest.raises(RunDirError, match="no checkpoint"):
        prepare_run_dir(tmp_path / "empty", resume=True, overwrite=False)
    prepare_run_dir(tmp_path / "done", resume=False, overwrite=True)
    assert not (tmp_path / "done" / "model.npz").exists()


@pytest.mark.parametrize("field, value, expected", [
    ("optimizer", "rmsprop", "unknown optimizer"), ("schedule", "warm", "unknown schedule"),
    ("epochs", 0, "epochs must be a positive integer"), ("lr", -1.0, "lr must be > 0"),
    ("model", "lenet7", "unknown model"), ("augment", "blur", "unknown augment 'blur'"),
    ("augment_strength", 5.0, "augment_strength must be a number in 0..4"),
])
def test_bad_settings_are_one_line_errors(field, value, expected):
    with pytest.raises(Lenet5Error, match=expected):
        small_config(**{field: value}).resolved()


@pytest.mark.parametrize("model", [name for name in MODELS if name != "lenet5-1998"])
def test_sdlm_on_a_model_without_a_second_order_pass_is_refused_before_anything_runs(model, tmp_path, capsys):
    from lenet5.cli import main as cli

    assert cli.main(["train", "--model", model, "--optimizer", "sdlm", "--out", str(tmp_path / "run"),
                     "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"optimizer 'sdlm' cannot train model '{model}': its " in err, err
    assert "only lenet5-1998 can use it; choose another optimizer" in err and not (tmp_path / "run").exists()


def test_sdlm_trains_lenet5_1998():
    assert small_config(model="lenet5-1998", optimizer="sdlm").resolved().optimizer == "sdlm"


def test_the_loss_is_the_models_own_unless_chosen_and_a_dense_output_refuses_the_rbf_criteria():
    assert small_config().resolved().loss == "softmax"
    assert small_config(model="lenet5-1998").resolved().loss == "map"
    assert small_config(model="lenet5-1998", loss="mle").resolved().loss == "mle"
    with pytest.raises(Lenet5Error, match="model 'relu' cannot train with loss 'map': it accepts softmax"):
        small_config(model="relu", loss="map").resolved()


@pytest.mark.parametrize("model, loss", [("lenet5-1998", "map"), ("lenet5", "softmax")])
def test_a_config_saved_before_the_loss_was_chosen_names_its_models_own(model, loss):
    saved = asdict(small_config(model=model))
    del saved["loss"]
    assert TrainConfig.from_dict(saved).loss == loss  # before resolving: what a resume compares with


def test_the_last_partial_batch_is_trained_and_every_test_image_is_evaluated(tmp_path):
    splits = synthetic_splits(n_train=70, n_test=37)
    trainer, metrics, _ = run(tmp_path, splits=splits, epochs=1, batch_size=32)
    assert trainer.optimizer.steps == 3  # 32 + 32 + 6
    assert metrics["test_count"] == 37


def test_each_epoch_draws_a_new_permutation_of_every_image(tmp_path):
    seen = []

    class Recording(FastModel):
        def forward(self, x, distortion=None):
            if self.model.training:
                seen.append(x[:, 0, 0, 0].copy())  # the noise in a corner tells the images apart
            return super().forward(x, distortion)

    splits = synthetic_splits(n_train=50)
    run_dir = tmp_path / "perm"
    prepare_run_dir(run_dir, resume=False, overwrite=False)
    trainer = make_trainer(run_dir, small_config(epochs=2, batch_size=16, augment="none"), splits,
                           engine=Recording)
    trainer.fit()
    first, second = np.concatenate(seen[:4]), np.concatenate(seen[4:])
    assert sorted(first) == sorted(second) == sorted(splits.x_train[:, 0, 0, 0])  # each image once per epoch
    assert not np.array_equal(first, second) and not np.array_equal(first, splits.x_train[:, 0, 0, 0])


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_progress_bar_on_a_terminal_only_and_none_without_tqdm(tmp_path, monkeypatch):
    pytest.importorskip("tqdm")
    splits = synthetic_splits(n_train=64)
    for name, tqdm_missing in (("bar", False), ("no-tqdm", True)):
        run_dir = tmp_path / name
        prepare_run_dir(run_dir, resume=False, overwrite=False)
        terminal = Terminal()
        monkeypatch.setattr(sys, "stderr", terminal)
        if tqdm_missing:
            monkeypatch.setitem(sys.modules, "tqdm", None)  # `import tqdm` raises ModuleNotFoundError
        trainer = make_trainer(run_dir, small_config(epochs=1), splits)
        trainer.progress = True
        trainer.fit()
        monkeypatch.undo()
        if tqdm_missing:
            assert terminal.getvalue() == ""
        else:
            assert "epoch 1/1:" in terminal.getvalue() and "/2 [" in terminal.getvalue()
        assert "epoch  1/1  loss" in (run_dir / "log.txt").read_text()


def test_random_shifts_move_each_image_and_pad_with_background():
    from lenet5.data.augment import random_shift

    images = np.full((200, 1, 8, 8), -0.5, np.float32)
    images[:, 0, 3, 4] = 2.0
    shifted = random_shift(images, 2, np.random.default_rng(0), fill=-0.5)
    positions = {tuple(np.argwhere(image[0] == 2.0)[0]) for image in shifted}
    assert len(positions) == 25  # every shift in [-2, 2]^2 drawn
    assert set(np.unique(shifted)) == {-0.5, 2.0}
    assert shifted.shape == images.shape and np.array_equal(images[:, 0, 3, 4], np.full(200, 2.0))


def test_an_engine_error_mid_run_stops_training_in_one_line_that_says_how_to_resume(tmp_path):
    calls = {"n": 0}

    class Failing(FastModel):  # as a kernel that cannot run, or a file that cannot be read
        def forward(self, x, distortion=None):
            if self.model.training:
                calls["n"] += 1
                if calls["n"] == 9:
                    raise Lenet5Error("the engine failed")
            return super().forward(x, distortion)

    run_dir = tmp_path / "run"
    prepare_run_dir(run_dir, resume=False, overwrite=False)
    trainer = make_trainer(run_dir, small_config(epochs=3), synthetic_splits(), engine=Failing)
    with pytest.raises(TrainingError) as info:
        trainer.fit()
    message = str(info.value)
    assert message.startswith("the engine failed; training stopped at epoch 2, step 3 ("), message
    assert f"continue with lenet5 train --out {run_dir} --resume" in message and "\n" not in message
    assert Checkpoint(run_dir / "checkpoint.npz").training["epoch"] == 1  # the last epoch's checkpoint is kept
