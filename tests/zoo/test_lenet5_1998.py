"""LeNet-5 as published (`lenet5-1998`): the paper's counts from the model itself, its RBF
codes, its two criteria (MAP and MLE), SDLM training through the trainer (the loss falls,
resume is bit-identical, the order is fixed), the curvature of its output layer, and the fast
engine's gradients."""


import hashlib

import numpy as np
import pytest
import torch

from lenet5.errors import Lenet5Error
from lenet5.fast import FastModel
from lenet5.nn import RBF, SDLM, MAPLoss, MLELoss, SoftmaxCrossEntropy, estimate_curvature
from lenet5.nn.sequential import layer_connections, trainable_count
from lenet5.training.checkpoint import Checkpoint
from lenet5.training.recipe import TrainConfig, make_optimizer, make_schedule, seeds
from lenet5.training.run_dir import prepare_run_dir
from lenet5.training.splits import DataSplits
from lenet5.training.trainer import Trainer
from lenet5.zoo import lecun1998
from lenet5.zoo.lecun1998 import (
    PAPER_CONNECTIONS, PAPER_PARAMETERS, PAPER_TOTAL_CONNECTIONS, PAPER_TOTAL_PARAMETERS, PenaltyGaussNewton,
    estimate_sdlm_curvature, rbf_codes
)
from lenet5.zoo.models import MODELS, build_model, get_spec

from ..nn.torch_twins import max_relative_difference
from ..training.test_train import fit_until_interrupted

PAPER_LAYERS = {"C1": "c1", "S2": "s2", "C3": "c3", "S4": "s4", "C5": "c5", "F6": "f6", "OUTPUT": "output"}


# -- the network's counts -------------------------------------------------------------------
def test_each_layer_has_the_papers_trainable_parameters_and_connections():
    model = build_model("lenet5-1998")
    shapes, shape = {}, model.input_shape
    for name, layer in zip(model.layer_names, model.layers):
        shapes[name] = (shape, layer.output_shape(shape))
        shape = shapes[name][1]
    for paper_name, name in PAPER_LAYERS.items():
        layer = model[name]
        assert layer_connections(layer, *shapes[name]) == PAPER_CONNECTIONS[paper_name], paper_name
        assert trainable_count(layer) == PAPER_PARAMETERS.get(paper_name, 0), paper_name
    # Masked C3 weights are not trainable: the table's 60 map pairs of 5×5 weights and 16 biases.
    assert trainable_count(model["c3"]) == int(lecun1998.C3_CONNECTIONS.sum()) * 25 + 16 < model["c3"].weight.size
    assert model.num_parameters() == 60_000


def test_the_summary_shows_the_papers_totals_and_the_fixed_centres_apart():
    text = build_model("lenet5-1998").summary(print_fn=None)
    assert f"Trainable params: {PAPER_TOTAL_PARAMETERS:,} (" in text
    assert f"Connections: {PAPER_TOTAL_CONNECTIONS:,}" in text
    assert "Non-trainable params: 840 (" in text  # the ten 84-pixel RBF codes
    c3_row = next(line for line in text.splitlines() if line.startswith("c3 (Conv2D)"))
    assert c3_row.split()[-4:] == ["151,600", "1,516", "0", "1,516"]


# -- the RBF codes ----------------------------------------------------------------------------
def test_the_codes_are_ten_distinct_7_by_12_bitmaps_of_plus_and_minus_one():
    codes = rbf_codes()
    assert codes.shape == (10, 84) and set(np.unique(codes)) == {-1.0, 1.0}
    assert lecun1998.code_bitmaps().shape == (10, 12, 7)
    distances = (codes[:, None, :] != codes[None, :, :]).sum(axis=2)
    assert (distances[~np.eye(10, dtype=bool)] > 0).all()
    printed = lecun1998.print_codes(print_fn=None).splitlines()
    assert len(printed) == 13 and printed[0].split() == [str(i) for i in range(10)]


# SHA-256 of figure 3's ten digits read off a capture of the printed figure, independently of
# the numeric list the codes were typed from: `figures/ASCII_set.png` of francotseng/LeNet5 on
# GitHub (commit 9a156f9), each 7×12 cell's grey level sampled and checked by eye, all 840
# pixels; written as the codes' 120 rows of "#" (black) and "." joined by newlines, digit 0
# first. docs/lenet5-1998.md says how it was read.
FIGURE_3_DIGITS_SHA256 = "657773aa7a78dd3fa682a9c772995c53948bca1691e6410f2ba9b26f3663051e"


def test_the_codes_are_figure_3_pixel_for_pixel():
    rows = ["".join("#" if value > 0 else "." for value in row) for bitmap in lecun1998.code_bitmaps()
            for row in bitmap]
    assert hashlib.sha256("\n".join(rows).encode()).hexdigest() == FIGURE_3_DIGITS_SHA256


def test_the_output_layer_holds_the_codes_fixed_and_training_leaves_them():
    model = build_model("lenet5-1998")
    output = model["output"]
    assert isinstance(output, RBF) and not output.trainable
    assert np.array_equal(output.centers, rbf_codes())
    assert "output.centers" in model.state_dict()
    assert not any(name.startswith("output.") for name, _ in model.named_parameters())
    assert get_spec("lenet5-1998").loss == "map" and isinstance(get_spec("lenet5-1998").make_loss(), MAPLoss)
    assert isinstance(get_spec("lenet5").make_loss(), SoftmaxCrossEntropy)


def test_the_rbf_output_takes_either_of_the_papers_criteria_and_a_dense_output_softmax_only():
    spec = get_spec("lenet5-1998")
    assert spec.losses == ("map", "mle")
    assert isinstance(spec.make_loss("mle"), MLELoss) and isinstance(spec.make_loss("map"), MAPLoss)
    assert spec.make_loss("map").j == 0.1
    for name in MODELS:
        if name == "lenet5-1998":
            continue
        assert get_spec(name).losses == ("softmax",)
        with pytest.raises(Lenet5Error) as refused:
            get_spec(name).make_loss("mle")
        assert str(refused.value) == (f"model {name!r} cannot train with loss 'mle': it accepts softmax "
                                      "(the mle criterion needs an RBF output: lenet5-1998)")
    with pytest.raises(Lenet5Error, match="cannot train with loss 'softmax': it accepts map or mle"):
        spec.make_loss("softmax")


def test_c3_connections_stay_importable_from_models():
    from lenet5.zoo.models import C3_CONNECTIONS

    assert C3_CONNECTIONS is lecun1998.C3_CONNECTIONS
    assert C3_CONNECTIONS.sum(axis=1).tolist() == [3] * 6 + [4] * 9 + [6]


def test_weights_are_uniform_within_2_4_over_the_square_root_of_the_fan_in():
    model = build_model("lenet5-1998", seed=3)
    for name, fan_in in (("c1", 25), ("c5", 400), ("f6", 120)):
        weight = model[name].weight.value
        limit = 2.4 / np.sqrt(fan_in)
        assert np.abs(weight).max() <= limit and np.abs(weight).max() > 0.9 * limit, name


# -- the curvature SDLM steps with ---------------------------------------------------------------
def test_the_output_curvature_is_the_penalty_residuals_2_plus_the_competition_seen_through_the_rbf():
    rng = np.random.default_rng(0)
    output, loss = RBF(84, 10, centers=rbf_codes(np.float64)), MAPLoss(j=0.1)
    x, labels = rng.uniform(-1.7, 1.7, (5, 84)), rng.integers(0, 10, 5)
    found = PenaltyGaussNewton(output, loss).curvature(x, labels)
    logits = -((x[:, None, :] - rbf_codes(np.float64)[None]) ** 2).sum(axis=2)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= np.exp(-0.1 - logits.max(axis=1, keepdims=True)) + probs.sum(axis=1, keepdims=True)
    competition = np.einsum("ni,nij->nj", probs * (1 - probs), 4 * (x[:, None, :] - rbf_codes(np.float64)) ** 2)
    assert max_relative_difference(found, 2 + competition) < 1e-10
    # Far from every code, as at initialisation, the competition vanishes and 2 is what is left.
    assert np.allclose(PenaltyGaussNewton(output, loss).curvature(np.full((2, 84), 9.0), [0, 1]), 2.0)


def test_f6_bias_curvature_is_f_prime_squared_times_the_output_curvature_averaged_over_patterns():
    model = build_model("lenet5-1998", seed=0).to(np.float64)
    loss = MAPLoss(j=0.1)
    x = np.random.default_rng(1).standard_normal((7,) + model.input_shape)
    y = np.arange(7) % 10
    estimate_sdlm_curvature(model, loss, x, y, batch_size=3)
    features = x
    for layer in model.layers[:-2]:  # up to F6's weighted sums
        features = layer.forward(features)
    slope = 1.7159 * 2 / 3 * (1 - np.tanh(2 * features / 3) ** 2)
    expected = (slope**2 * PenaltyGaussNewton(model["output"], loss).curvature(model["a6"].forward(features), y))
    assert max_relative_difference(model["f6"].bias.curvature, expected.mean(axis=0)) < 1e-10
    # Every parameter gets a curvature (C3's masked weights, which never move, get 0).
    assert all((p.curvature >= 0).all() and p.curvature.any() for p in model.parameters())


def test_under_mle_the_output_curvature_is_the_residuals_2_alone_and_it_is_the_exact_hessian_diagonal():
    """MLELoss.curvature is 0 (E is linear in the logits); y_D = Σ_j (x_j − c_Dj)² is exactly
    quadratic in F6's outputs, so 2 is the diagonal of its true Hessian, not an approximation."""
    rng = np.random.default_rng(2)
    output, codes = RBF(84, 10, centers=rbf_codes(np.float64)), torch.tensor(rbf_codes(np.float64))
    x, labels = rng.uniform(-1.7, 1.7, (5, 84)), rng.integers(0, 10, 5)
    found = PenaltyGaussNewton(output, MLELoss()).curvature(x, labels)

    def summed_penalty(features):
        return ((features - codes[labels]) ** 2).sum()

    hessian = torch.autograd.functional.hessian(summed_penalty, torch.tensor(x)).reshape(5 * 84, 5 * 84)
    assert found.shape == (5, 84)
    assert np.array_equal(found, torch.diagonal(hessian).reshape(5, 84).numpy())
    assert np.array_equal(found, np.full((5, 84), 2.0))


def test_under_mle_sdlm_curvature_comes_from_the_penalty_where_the_engines_chain_alone_gives_zero():
    model = build_model("lenet5-1998", seed=0).to(np.float64)
    x = np.random.default_rng(1).standard_normal((6,) + model.input_shape)
    y = np.arange(6) % 10
    estimate_curvature(model, MLELoss(), x, y, batch_size=4)
    assert not any(p.curvature.any() for p in model.parameters())  # what SDLM would step with otherwise
    estimate_sdlm_curvature(model, MLELoss(), x, y, batch_size=4)
    features = x
    for layer in model.layers[:-2]:  # up to F6's weighted sums
        features = layer.forward(features)
    slope = 1.7159 * 2 / 3 * (1 - np.tanh(2 * features / 3) ** 2)
    assert max_relative_difference(model["f6"].bias.curvature, (slope**2 * 2.0).mean(axis=0)) < 1e-10
    assert all((p.curvature >= 0).all() and p.curvature.any() for p in model.parameters())


def test_other_models_get_the_engines_own_curvature():
    model = build_model("lenet5-1998-softmax", seed=0).to(np.float64)
    x = np.random.default_rng(1).standard_normal((4,) + model.input_shape)
    estimate_sdlm_curvature(model, SoftmaxCrossEntropyWithCurvature(), x, np.arange(4))
    ours = [p.curvature.copy() for p in model.parameters()]
    estimate_curvature(model, SoftmaxCrossEntropyWithCurvature(), x, np.arange(4))
    assert all(np.array_equal(a, p.curvature) for a, p in zip(ours, model.parameters()))


class SoftmaxCrossEntropyWithCurvature(SoftmaxCrossEntropy):
    """p(1 − p), the diagonal of softmax cross-entropy's Hessian in the logits."""

    def curvature(self, logits, labels):
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        return probs * (1 - probs)


# -- training it --------------------------------------------------------------------------------
def synthetic_splits(n_train=96, n_test=40, seed=0) -> DataSplits:
    """Ten classes the network can tell apart on 32×32 input: a bright square whose place is the class."""
    rng = np.random.default_rng(seed)

    def make(count):
        labels = rng.integers(0, 10, count)
        images = (-0.1 + rng.normal(0, 0.1, (count, 1, 32, 32))).astype(np.float32)
        for index, label in enumerate(labels):
            row, col = divmod(int(label), 5)
            images[index, 0, 5 + row * 11: 12 + row * 11, 3 + col * 5: 8 + col * 5] = 1.175
        return images, labels.astype(np.int64)

    (x, y), (xt, yt) = make(n_train), make(n_test)
    return DataSplits(x, y, x[:0], y[:0], xt, yt, [str(i) for i in range(10)])


def make_trainer(run_dir, config, splits, log_name="log.txt"):
    """What `lenet5 train` assembles for lenet5-1998: the model, SDLM, the run's loss, FastModel."""
    config = config.resolved()
    model = build_model(config.model, seed=seeds(config).init)
    return Trainer(model, make_optimizer(config, model.parameters()), make_schedule(config),
                   get_spec(config.model).make_loss(config.loss), FastModel(model), config=config, splits=splits,
                   run_dir=run_dir, progress=False, log=open(run_dir / log_name, "w"))


def config_1998(**overrides) -> TrainConfig:
    settings = dict(model="lenet5-1998", epochs=3, batch_size=8, validation=0, seed=5, lr=2e-4)
    settings.update(overrides)
    return TrainConfig(**settings)


def fit(tmp_path, name, config, splits):
    run_dir = tmp_path / name
    prepare_run_dir(run_dir, resume=False, overwrite=False)
    trainer = make_trainer(run_dir, config, splits)
    trainer.fit()
    return trainer


def test_the_defaults_are_the_papers_recipe():
    config = TrainConfig(model="lenet5-1998").resolved()
    assert (config.optimizer, config.schedule, config.order, config.epochs, config.mu) == (
        "sdlm", "lecun1998", "fixed", 20, 0.02)
    per_pattern = TrainConfig(model="lenet5-1998", batch_size=1).resolved()
    assert [make_schedule(per_pattern)(epoch) for epoch in range(20)] == list(lecun1998.PAPER_LEARNING_RATES)
    # On a batch the step on the mean gradient is scaled by the batch size (lenet5.training.recipe).
    assert make_schedule(config)(0) == config.batch_size * 5e-4
    optimizer = make_optimizer(per_pattern, build_model("lenet5-1998").parameters())
    assert isinstance(optimizer.optimizer, SDLM) and optimizer.optimizer.mu == 0.02  # stepped flat (FlatOptimizer)


def test_sdlm_training_lowers_the_map_loss_and_learns(tmp_path):
    splits = synthetic_splits()
    trainer = fit(tmp_path, "run", config_1998(epochs=4), splits)
    losses = [row["loss"] for row in trainer.history]
    assert losses[-1] < 0.5 * losses[0], losses
    metrics = trainer.finish()
    assert metrics["test_accuracy"] > 0.5  # chance is 0.1
    # Evaluation uses the model's own loss: the MAP criterion, which is never below log(1 + e^-j).
    assert metrics["test_loss"] > np.log1p(np.exp(-0.1))


def test_sdlm_training_lowers_the_mle_loss_and_learns_and_evaluates_in_it(tmp_path):
    splits = synthetic_splits()
    trainer = fit(tmp_path, "run", config_1998(epochs=4, loss="mle"), splits)
    assert isinstance(trainer.loss_fn, MLELoss) and trainer.config.loss == "mle"
    losses = [row["loss"] for row in trainer.history]
    assert losses[-1] < 0.5 * losses[0], losses
    metrics = trainer.finish()
    assert metrics["test_accuracy"] > 0.5  # chance is 0.1
    # The test loss is MLE's: the mean penalty of the correct class, not MAP's value.
    logits = trainer.engine.predict_logits(splits.x_test)
    assert metrics["test_loss"] == pytest.approx(MLELoss()(logits, splits.y_test), rel=1e-6)
    assert metrics["test_loss"] != pytest.approx(MAPLoss(0.1)(logits, splits.y_test), rel=1e-3)


def test_the_fixed_order_repeats_one_permutation_and_shuffle_does_not(tmp_path):
    splits = synthetic_splits(n_train=24)
    orders = {}
    for order in ("fixed", "shuffle"):
        run_dir = tmp_path / order
        prepare_run_dir(run_dir, resume=False, overwrite=False)
        trainer = make_trainer(run_dir, config_1998(order=order, batch_size=24, epochs=3), splits)
        seen = []
        step = trainer.train_step
        trainer.train_step = lambda x, y, distortion=None: (seen.append(y.copy()), step(x, y, distortion))[1]
        trainer.fit()
        orders[order] = seen
    assert all(np.array_equal(orders["fixed"][0], labels) for labels in orders["fixed"])
    assert not all(np.array_equal(orders["shuffle"][0], labels) for labels in orders["shuffle"])


def test_curvature_is_estimated_before_each_pass_and_kept_during_it(tmp_path):
    splits = synthetic_splits()
    run_dir = tmp_path / "run"
    prepare_run_dir(run_dir, resume=False, overwrite=False)
    trainer = make_trainer(run_dir, config_1998(epochs=2), splits)
    seen = []
    step = trainer.optimizer.step
    trainer.optimizer.step = lambda: (seen.append((trainer.epoch, trainer.optimizer.flat_state["h"].copy())), step())[1]
    trainer.fit()
    first = [h for epoch, h in seen if epoch == 0]
    second = [h for epoch, h in seen if epoch == 1]
    assert all(np.array_equal(first[0], h) for h in first) and all(np.array_equal(second[0], h) for h in second)
    assert not np.array_equal(first[0], second[0])


@pytest.mark.parametrize("interrupt_at_step", [5, 12, 20])  # mid-pass, a pass boundary, the last pass
def test_resuming_an_sdlm_run_is_bit_identical(tmp_path, interrupt_at_step):
    splits = synthetic_splits()  # 12 batches of 8 a pass
    config = config_1998()
    reference = fit(tmp_path, "reference", config, splits)

    run_dir = tmp_path / "interrupted"
    prepare_run_dir(run_dir, resume=False, overwrite=False)
    trainer = make_trainer(run_dir, config, splits)
    fit_until_interrupted(trainer, interrupt_at_step)
    checkpoint = Checkpoint(run_dir / "checkpoint.npz")
    assert "curvature" in checkpoint.training["rng_states"]
    resumed = make_trainer(run_dir, checkpoint.config, splits, log_name="log2")
    resumed.restore()
    assert resumed.epoch * 12 + resumed.step == interrupt_at_step
    resumed.fit()
    for name, value in reference.model.state_dict().items():
        assert np.array_equal(resumed.model.state_dict()[name], value), name
    assert np.array_equal(resumed.optimizer.flat_state["h"], reference.optimizer.flat_state["h"])
    assert [row["loss"] for row in resumed.history] == [row["loss"] for row in reference.history]


# -- the fast engine -------------------------------------------------------------------------------
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_the_fast_engine_gives_the_reference_map_gradients(training):
    model = build_model("lenet5-1998", seed=1).to(np.float64).train(training)
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((9,) + MODELS["lenet5-1998"].input_shape), rng.integers(0, 10, 9)
    loss = get_spec("lenet5-1998").make_loss()

    def step(engine):
        for parameter in model.parameters():
            parameter.zero_grad()
        logits = engine.forward(x)
        dx = engine.backward(loss.value_and_grad(logits, y)[1])
        return [logits, dx] + [p.grad.copy() for p in model.parameters()]

    expected = step(model)
    for found, reference in zip(step(FastModel(model)), expected):
        assert max_relative_difference(found, reference) < 1e-10


# -- the report -------------------------------------------------------------------------------------
def test_the_report_of_a_1998_run_draws_its_codes_and_its_error_per_pass_and_others_get_neither(tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image

    from lenet5.report import lecun1998_pictures

    history = [{"epoch": 1, "accuracy": 0.97, "val_accuracy": None, "test_accuracy": 0.98},
               {"epoch": 2, "accuracy": 0.99, "val_accuracy": None, "test_accuracy": 0.985}]
    pictures = lecun1998_pictures(build_model("lenet5-1998"), history, tmp_path)
    assert [path.name for _, path in pictures] == ["rbf_codes.png", "error_per_pass.png"]
    for _, path in pictures:
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) > 100
    assert [path.name for _, path in lecun1998_pictures(build_model("lenet5-1998"), [], tmp_path)] == ["rbf_codes.png"]
    assert lecun1998_pictures(build_model("lenet5-1998-softmax"), history, tmp_path / "none") == []


# -- the squashing after C1 and C3, and runs of the earlier revision -------------------------------
@pytest.mark.parametrize("name", ["lenet5-1998", "lenet5-1998-softmax"])
def test_every_layer_up_to_f6_squashes_its_sums_the_convolutions_too(name):
    """Section II-B: each unit's weighted sum plus bias "is then passed through a sigmoid
    squashing function"; so every trainable layer before the output is followed by one."""
    model = build_model(name, seed=0)
    layers = dict(zip(model.layer_names, model.layers))
    assert model.architecture_revision == 2
    for trainable in ("c1", "s2", "c3", "s4", "c5", "f6"):
        after = model.layer_names[model.layer_names.index(trainable) + 1]
        if after == "flatten":
            after = model.layer_names[model.layer_names.index(after) + 1]
        assert type(layers[after]).__name__ == "ScaledTanh", (trainable, after)


def test_the_earlier_revision_has_the_same_parameters_and_weights_but_no_squashing_after_c1_and_c3():
    today, earlier = build_model("lenet5-1998", seed=3), build_model("lenet5-1998", seed=3, revision=1)
    assert [name for name in today.layer_names if name not in earlier.layer_names] == ["a1", "a3"]
    assert today.state_dict().keys() == earlier.state_dict().keys()
    for name, value in today.state_dict().items():
        assert np.array_equal(earlier.state_dict()[name], value), name
    x = np.random.default_rng(0).uniform(-0.1, 1.175, (2, 1, 32, 32))
    assert not np.allclose(today.eval().forward(x), earlier.eval().forward(x))


def test_an_unknown_revision_is_refused_in_one_line():
    from lenet5.errors import Lenet5Error

    with pytest.raises(Lenet5Error, match=r"model 'lenet5-1998' has no revision 7; this lenet5 builds revisions 1, 2"):
        build_model("lenet5-1998", revision=7)


def test_a_run_saved_before_revisions_loads_and_predicts_as_it_was_trained(tmp_path):
    """A model file without `architecture_revision` (every run before it was saved) is
    revision 1: it is rebuilt without the squashing after C1 and C3, and predicts as the
    network it was trained as did."""
    from lenet5.files.weights import load_model, save_model

    trained = build_model("lenet5-1998", seed=4, revision=1)
    del trained.architecture_revision  # as a lenet5 that knew no revisions saved it
    save_model(tmp_path / "model.npz", trained, {"preprocessing": {"method": "lecun", "pad": 2}})
    assert "architecture_revision" not in (tmp_path / "model.json").read_text()
    loaded, _ = load_model(tmp_path / "model.npz")
    assert loaded.layer_names == trained.layer_names and loaded.architecture_revision == 1
    x = np.random.default_rng(1).uniform(-0.1, 1.175, (3, 1, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(loaded.forward(x), trained.eval().forward(x))

    today = build_model("lenet5-1998", seed=4)
    save_model(tmp_path / "today.npz", today, {"preprocessing": {"method": "lecun", "pad": 2}})
    reloaded, metadata = load_model(tmp_path / "today.npz")
    assert metadata["architecture_revision"] == 2 and reloaded.layer_names == today.layer_names


def test_resuming_a_checkpoint_of_the_earlier_revision_is_refused_in_one_line(tmp_path):
    splits = synthetic_splits(n_train=16)
    run_dir = tmp_path / "run"
    prepare_run_dir(run_dir, resume=False, overwrite=False)
    config = config_1998(epochs=1, batch_size=8).resolved()
    model = build_model(config.model, seed=seeds(config).init, revision=1)
    trainer = Trainer(model, make_optimizer(config, model.parameters()), make_schedule(config),
                      get_spec(config.model).make_loss(), FastModel(model), config=config, splits=splits,
                      run_dir=run_dir, progress=False, log=open(run_dir / "log.txt", "w"))
    trainer.fit()
    checkpoint = Checkpoint(run_dir / "checkpoint.npz")  # opens: its arrays are the revision's
    resumed = make_trainer(run_dir, checkpoint.config, splits, log_name="log2")
    from lenet5.errors import CheckpointError

    with pytest.raises(CheckpointError) as refused:
        resumed.restore()
    message = str(refused.value)
    assert "\n" not in message
    assert "checkpoint is of lenet5-1998 revision 1, without the squashing after C1 and C3" in message
    assert "this lenet5 trains revision 2: start a new run" in message
