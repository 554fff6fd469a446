"""Distortions: shapes, the identity at strength 0, bilinear reading against a hand computation
and a loop oracle, the affine convention, seeds, the displacement statistics, and resumes."""

import math

import numpy as np
import pytest

from lenet5.data.augment import (
    ELASTIC_ALPHA, ELASTIC_SIGMA, KINDS, ROTATION_DEGREES, SCALE, SHEAR, TRANSLATION, Distortion, affine_sample_points,
    bilinear_sample, distort, elastic_field, gaussian_matrix, random_affine, random_shift, shift_images
)
from lenet5.errors import Lenet5Error
from lenet5.training.checkpoint import Checkpoint
from lenet5.training.recipe import TrainConfig
from lenet5.training.run_dir import prepare_run_dir
from tests.training.test_train import fit_until_interrupted, make_trainer, run, small_config, synthetic_splits


def digits(count=16, side=28, seed=0, dtype=np.float32):
    """Images with a background of -0.4 and a few bright strokes, like preprocessed digits."""
    rng = np.random.default_rng(seed)
    images = np.full((count, 1, side, side), -0.4, dtype)
    for image in images:
        row, col = rng.integers(6, side - 10, 2)
        image[0, row: row + 8, col: col + 2] = 2.5
        image[0, row, col: col + 6] = 2.5
    return images


def identity_maps(count):
    return np.tile(np.eye(2), (count, 1, 1))


def naive_bilinear(image, row, col, fill):
    """One channel read at one point, the four neighbours written out."""
    height, width = image.shape

    def at(r, c):
        return image[r, c] if 0 <= r < height and 0 <= c < width else fill

    top, left = math.floor(row), math.floor(col)
    down, right = row - top, col - left
    return ((1 - down) * ((1 - right) * at(top, left) + right * at(top, left + 1))
            + down * ((1 - right) * at(top + 1, left) + right * at(top + 1, left + 1)))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_each_kind_keeps_shape_and_dtype_and_leaves_its_input_alone(kind, dtype):
    images = digits(dtype=dtype)
    before = images.copy()
    out = distort(images, kind, 1.0, np.random.default_rng(0), fill=-0.4)
    assert out.shape == images.shape and out.dtype == dtype
    assert np.array_equal(images, before)
    assert np.isfinite(out).all()
    if kind != "none":
        assert not np.array_equal(out, images)
        # Bilinear reading blends, never extrapolates: values stay within the input's range.
        assert out.min() >= images.min() - 1e-6 and out.max() <= images.max() + 1e-6


@pytest.mark.parametrize("kind", KINDS)
def test_zero_strength_is_the_identity_and_draws_nothing(kind):
    images = digits()
    rng = np.random.default_rng(3)
    state = rng.bit_generator.state
    assert distort(images, kind, 0.0, rng, fill=-0.4) is images
    assert rng.bit_generator.state == state


def test_the_identity_map_reads_every_pixel_exactly():
    images = digits(seed=4)
    rows, cols = affine_sample_points(identity_maps(len(images)), np.zeros((len(images), 2)), (28, 28))
    assert np.array_equal(bilinear_sample(images, rows, cols, fill=-0.4), images)


@pytest.mark.parametrize("max_shift", [1, 2, 5])
def test_a_pure_integer_translation_equals_random_shift(max_shift):
    images = digits(count=64, seed=1)
    shifted = random_shift(images, max_shift, np.random.default_rng(9), fill=-0.4)
    # random_shift's draws, replayed: output (i, j) shows input (i + dy - s, j + dx - s).
    rng = np.random.default_rng(9)
    dy, dx = rng.integers(0, 2 * max_shift + 1, 64), rng.integers(0, 2 * max_shift + 1, 64)
    translations = np.stack([max_shift - dy, max_shift - dx], 1).astype(float)
    rows, cols = affine_sample_points(identity_maps(64), translations, (28, 28))
    assert np.array_equal(bilinear_sample(images, rows, cols, fill=-0.4), shifted)


def test_shift_strength_is_pixels_over_two():
    images = digits(count=32)
    for strength, pixels in ((0.5, 1), (1.0, 2), (1.5, 3)):
        # distort draws the batch's seed, and the shifts come from a generator of that seed.
        seed = Distortion.draw("shift", strength, np.random.default_rng(2)).seed
        expected = random_shift(images, pixels, np.random.default_rng(seed), fill=-0.4)
        assert np.array_equal(distort(images, "shift", strength, np.random.default_rng(2), fill=-0.4), expected)


def test_bilinear_against_a_hand_computation():
    image = np.array([[[[1.0, 2.0], [3.0, 5.0]]]])
    points = [(0.25, 0.5), (0.0, 0.0), (1.0, 1.0), (0.5, 1.5), (-0.5, 0.0), (-3.0, 7.0)]
    rows = np.array([[[p[0] for p in points]]])
    cols = np.array([[[p[1] for p in points]]])
    out = bilinear_sample(image, rows, cols, fill=-1.0)[0, 0, 0]
    # (0.25, 0.5): rows blend 1·0.75 + 3·0.25 and 2·0.75 + 5·0.25, then half of each.
    top, bottom = 1.0 * 0.75 + 3.0 * 0.25, 2.0 * 0.75 + 5.0 * 0.25
    assert out[0] == pytest.approx(0.5 * top + 0.5 * bottom)
    assert out[1] == 1.0 and out[2] == 5.0
    assert out[3] == pytest.approx(0.5 * (0.5 * 2.0 + 0.5 * -1.0) + 0.5 * (0.5 * 5.0 + 0.5 * -1.0))
    assert out[4] == pytest.approx(0.5 * -1.0 + 0.5 * 1.0)  # half a pixel above: half fill
    assert out[5] == -1.0  # far outside: fill alone


def test_bilinear_matches_a_loop_over_pixels_on_random_points():
    rng = np.random.default_rng(5)
    images = rng.standard_normal((3, 2, 7, 9))
    rows = rng.uniform(-3, 10, (3, 7, 9))
    cols = rng.uniform(-3, 12, (3, 7, 9))
    out = bilinear_sample(images, rows, cols, fill=0.7)
    for n in range(3):
        for channel in range(2):
            for i in range(7):
                for j in range(9):
                    expected = naive_bilinear(images[n, channel], rows[n, i, j], cols[n, i, j], 0.7)
                    assert out[n, channel, i, j] == pytest.approx(expected, abs=1e-5), (n, channel, i, j)


def test_the_affine_map_turns_the_image_about_its_centre():
    # output = centre + A·(input − centre): A = [[0, -1], [1, 0]] turns a quarter to the left.
    images = digits(count=4, seed=6)
    quarter = np.tile(np.array([[0.0, -1.0], [1.0, 0.0]]), (4, 1, 1))
    rows, cols = affine_sample_points(quarter, np.zeros((4, 2)), (28, 28))
    assert np.allclose(bilinear_sample(images, rows, cols, fill=-0.4), np.rot90(images, axes=(2, 3)), atol=1e-5)
    # A translation of (+3, -2) moves the content down 3 rows and left 2 columns.
    rows, cols = affine_sample_points(identity_maps(4), np.tile([3.0, -2.0], (4, 1)), (28, 28))
    moved = bilinear_sample(images, rows, cols, fill=-0.4)
    assert np.array_equal(moved[:, :, 3:, :-2], images[:, :, :-3, 2:])


def test_random_affine_parameters_stay_in_their_ranges():
    matrices, translations = random_affine(20_000, np.random.default_rng(0), strength=1.0)
    assert np.abs(translations).max() <= TRANSLATION
    assert abs(translations.mean()) < 0.05
    assert translations.std() == pytest.approx(TRANSLATION / math.sqrt(3), rel=0.03)
    # Rotation by θ then shear, then scale s·q by s/q: the determinant is s², within (1 ± SCALE)².
    determinants = np.linalg.det(matrices)
    assert determinants.min() >= (1 - SCALE) ** 2 - 1e-9 and determinants.max() <= (1 + SCALE) ** 2 + 1e-9
    # A = R(θ)·shear·sizing sends the column axis (0, 1) to s_y·(−sin θ, cos θ): θ is read there,
    # and Rᵀ·A = [[s_x, 0], [h·s_x, s_y]] gives the shear h.
    rotation = np.degrees(np.arctan2(-matrices[:, 0, 1], matrices[:, 1, 1]))
    assert np.abs(rotation).max() <= ROTATION_DEGREES and np.abs(rotation).max() > 0.99 * ROTATION_DEGREES
    assert rotation.std() == pytest.approx(ROTATION_DEGREES / math.sqrt(3), rel=0.03)
    theta = np.radians(rotation)
    unrotated = np.stack([np.stack([np.cos(theta), np.sin(theta)], -1),
                          np.stack([-np.sin(theta), np.cos(theta)], -1)], 1) @ matrices
    assert np.allclose(unrotated[:, 0, 1], 0, atol=1e-12)
    shear = unrotated[:, 1, 0] / unrotated[:, 0, 0]
    assert np.abs(shear).max() <= SHEAR + 1e-9 and np.abs(shear).max() > 0.99 * SHEAR
    doubled, _ = random_affine(20_000, np.random.default_rng(0), strength=2.0)
    assert np.allclose(np.degrees(np.arctan2(-doubled[:, 0, 1], doubled[:, 1, 1])), 2 * rotation)


def test_the_gaussian_matrix_convolves_with_a_normalised_gaussian():
    matrix = gaussian_matrix(28, 4.0)
    centre = matrix[14]
    assert centre.sum() == pytest.approx(1.0, abs=1e-3)  # nearly all of the kernel fits
    assert np.argmax(centre) == 14 and centre[14 + 4] / centre[14] == pytest.approx(math.exp(-0.5), rel=1e-5)
    assert np.allclose(matrix, matrix.T)


def test_elastic_field_is_smoothed_uniform_noise_scaled_by_alpha():
    count = 4000
    field = elastic_field(count, (28, 28), np.random.default_rng(1))
    assert field.shape == (count, 2, 28, 28)
    # Loop oracle on the first images: the same noise, smoothed image by image.
    noise = 2 * np.random.default_rng(1).random((count, 2, 28, 28), dtype=np.float32) - 1
    noise = noise[:3].astype(np.float64)
    rows, cols = gaussian_matrix(28, ELASTIC_SIGMA), gaussian_matrix(28, ELASTIC_SIGMA)
    for n in range(3):
        for axis in range(2):
            expected = ELASTIC_ALPHA * rows @ noise[n, axis] @ cols.T
            assert np.allclose(field[n, axis], expected, atol=1e-4)
    # At the centre: mean 0, and the variance of a sum of uniforms (1/3 each) weighted by the
    # separable kernel's products: α²/3 · (Σ g_i²)².
    centre = field[:, :, 14, 14].ravel()
    expected_std = ELASTIC_ALPHA * math.sqrt(1 / 3) * float((rows[14] ** 2).sum())
    assert abs(centre.mean()) < 0.05 * expected_std
    assert centre.std() == pytest.approx(expected_std, rel=0.05)
    # Smooth: a pixel and its neighbour move nearly together (σ = 4 pixels).
    neighbour = field[:, :, 14, 15].ravel()
    assert np.corrcoef(centre, neighbour)[0, 1] > 0.9
    assert np.corrcoef(field[:, 0, 14, 14], field[:, 1, 14, 14])[0, 1] == pytest.approx(0, abs=0.05)
    assert np.allclose(elastic_field(3, (28, 28), np.random.default_rng(1), alpha=2 * ELASTIC_ALPHA),
                       2 * field[:3], atol=1e-4)


@pytest.mark.parametrize("kind", ["shift", "affine", "elastic"])
def test_the_same_seed_distorts_the_same_way(kind):
    images = digits(count=32)
    first = distort(images, kind, 1.0, np.random.default_rng(11), fill=-0.4)
    assert np.array_equal(first, distort(images, kind, 1.0, np.random.default_rng(11), fill=-0.4))
    assert not np.array_equal(first, distort(images, kind, 1.0, np.random.default_rng(12), fill=-0.4))


def test_shifts_are_drawn_block_by_block_from_the_seed_and_the_block():
    # The oracle of the drawing scheme, which fixes what every run (and every resumed run)
    # distorts: block b's generator is seeded by (seed, b) and draws a full block's shifts,
    # of which a shorter last block takes the first.
    images = digits(count=70, seed=3)  # blocks of 32, 32 and 6 rows
    distortion = Distortion.draw("shift", 1.0, np.random.default_rng(4), fill=-0.4)
    expected = []
    for block, first in enumerate(range(0, 70, Distortion.BLOCK)):
        rows = images[first : first + Distortion.BLOCK]
        offsets = np.random.default_rng([distortion.seed, block]).integers(0, 5, (2, Distortion.BLOCK))
        expected.append(shift_images(rows, 2, offsets[:, : len(rows)], -0.4))
    assert np.array_equal(distortion.apply(images), np.concatenate(expected))


@pytest.mark.parametrize("kind", ["shift", "affine", "elastic"])
def test_a_short_last_block_is_distorted_as_the_first_rows_of_a_full_one(kind):
    images = digits(count=70, seed=3)  # blocks of 32, 32 and 6 rows
    longer = np.concatenate([images, digits(count=26, seed=5)])  # three full blocks
    distortion = Distortion.draw(kind, 1.0, np.random.default_rng(4), fill=-0.4)
    whole = distortion.apply(images)
    if kind == "elastic":  # the smoothing's products differ in size, so may round differently
        assert np.allclose(whole, distortion.apply(longer)[:70], atol=1e-5)
    else:
        assert np.array_equal(whole, distortion.apply(longer)[:70])
    assert not np.array_equal(whole, images)
    # Every block has its own generator: the same digit in the same place of two blocks
    # is distorted differently.
    same = distortion.apply(np.repeat(images[:1], 64, axis=0))
    assert not np.array_equal(same[0], same[Distortion.BLOCK])


def test_a_distortion_is_one_draw_from_the_trainers_generator():
    rng = np.random.default_rng(8)
    for kind in ("none", "affine"):
        state = rng.bit_generator.state
        assert Distortion.draw(kind, 0.0, rng) is None and rng.bit_generator.state == state
    assert Distortion.draw("none", 1.0, rng) is None
    first, second = Distortion.draw("elastic", 0.75, rng, fill=-0.42), Distortion.draw("elastic", 0.75, rng, fill=-0.42)
    assert first.seed != second.seed
    with pytest.raises(ValueError, match="unknown distortion 'blur'"):
        Distortion.draw("blur", 1.0, rng)


def test_elastic_moves_strokes_more_than_affine_alone():
    images = digits(count=256, seed=2)
    affine = distort(images, "affine", 1.0, np.random.default_rng(0), fill=-0.4)
    elastic = distort(images, "elastic", 1.0, np.random.default_rng(0), fill=-0.4)
    assert np.abs(elastic - images).mean() > np.abs(affine - images).mean()


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown distortion 'blur'"):
        distort(digits(), "blur", 1.0, np.random.default_rng(0))


@pytest.mark.parametrize("values, kind, strength", [
    ({"augment_shift": 2}, "shift", 1.0), ({"augment_shift": 3}, "shift", 1.5), ({"augment_shift": 0}, "none", 0.0),
    ({"augment_shift": 2, "augment": "elastic", "augment_strength": 0.5}, "elastic", 0.5),
])
def test_an_older_config_with_augment_shift_reads_as_shifts_of_that_many_pixels(values, kind, strength):
    config = TrainConfig.from_dict({"model": "lenet5", **values}).resolved()
    assert (config.augment, config.augment_strength) == (kind, strength)
    if "augment" not in values:  # shifted from the first step, as then; not the model's delay of today
        assert config.augment_delay == 0


@pytest.mark.parametrize("kind, interrupt_at_step", [("affine", 4), ("elastic", 9), ("shift", 7)])
def test_resume_after_interrupt_distorts_as_the_uninterrupted_run(tmp_path, kind, interrupt_at_step):
    splits = synthetic_splits()
    settings = dict(optimizer="momentum", augment=kind, augment_strength=1.0, augment_delay=0)
    reference, _, _ = run(tmp_path, "reference", splits=splits, **settings)
    plain, _, _ = run(tmp_path, "plain", splits=splits, optimizer="momentum", augment="none")
    assert not np.array_equal(plain.model.state_dict()["conv1.weight"], reference.model.state_dict()["conv1.weight"])

    run_dir = tmp_path / "interrupted"
    prepare_run_dir(run_dir, resume=False, overwrite=False)
    trainer = make_trainer(run_dir, small_config(**settings), splits)
    fit_until_interrupted(trainer, interrupt_at_step)
    checkpoint = Checkpoint(run_dir / "checkpoint.npz")
    assert (checkpoint.config.augment, checkpoint.config.augment_strength) == (kind, 1.0)
    resumed = make_trainer(run_dir, checkpoint.config, splits, log_name="log2")
    resumed.restore()
    resumed.fit()
    for name, value in reference.model.state_dict().items():
        assert np.array_equal(resumed.model.state_dict()[name], value), name
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in reference.history]


def test_a_checkpoint_of_an_older_lenet5_with_augment_shift_resumes(tmp_path):
    """Its hyperparameters hold `augment_shift` and lack the fields added since; its history
    rows lack the test columns. It resumes as the shift run it was, bit for bit."""
    from tests.helpers.crafted import DELETE, rewrite, set_field

    splits = synthetic_splits()
    # An older lenet5 distorted to the last epoch: no clean epochs.
    settings = dict(optimizer="momentum", augment="shift", augment_strength=1.0, augment_delay=0, clean_epochs=0)
    reference, _, _ = run(tmp_path, "reference", splits=splits, **settings)
    _, _, run_dir = run(tmp_path, "old", splits=splits, epochs=1, **settings)

    def make_old(members, metadata):
        for edit in (set_field("hyperparameters.augment_shift", 2), set_field("hyperparameters.augment", DELETE),
                     set_field("hyperparameters.augment_strength", DELETE),
                     set_field("hyperparameters.augment_delay", DELETE),
                     set_field("hyperparameters.clean_epochs", DELETE),
                     set_field("hyperparameters.track_test", DELETE), set_field("hyperparameters.order", DELETE),
                     set_field("hyperparameters.mu", DELETE)):
            edit(metadata)
        for row in metadata["training"]["history"]:
            del row["test_loss"], row["test_accuracy"]

    path = run_dir / "checkpoint.npz"
    rewrite(path, path, make_old)
    checkpoint = Checkpoint(path)
    assert (checkpoint.config.augment, checkpoint.config.augment_strength, checkpoint.config.augment_delay,
            checkpoint.config.clean_epochs) == ("shift", 1.0, 0, 0)
    resumed = make_trainer(run_dir, TrainConfig.from_dict({**vars(checkpoint.config), "epochs": 3}), splits,
                           log_name="log2")
    resumed.restore()
    resumed.fit()
    for name, value in reference.model.state_dict().items():
        assert np.array_equal(resumed.model.state_dict()[name], value), name


def test_bad_augment_settings_are_one_line_errors():
    with pytest.raises(Lenet5Error, match="unknown augment 'blur'; known: none, shift, affine, elastic"):
        small_config(augment="blur").resolved()
    with pytest.raises(Lenet5Error, match="augment_strength must be a number in 0..4, found -1"):
        small_config(augment="affine", augment_strength=-1).resolved()
    with pytest.raises(Lenet5Error, match="clean_epochs must be an integer >= 0 \\(epochs\\), found -2"):
        small_config(augment="affine", clean_epochs=-2).resolved()


@pytest.mark.parametrize("epochs, delay, clean, distorted_epochs", [
    (3, 2, 0, [3]), (4, 1, 2, [2]), (3, 0, 1, [1, 2]), (2, 0, 2, []), (3, 2, 2, []),
])
def test_the_delay_and_the_clean_epochs_leave_the_first_and_last_epochs_undistorted(
        tmp_path, epochs, delay, clean, distorted_epochs):
    from lenet5.fast import FastModel

    inputs = []

    class Recording(FastModel):
        def forward(self, x, distortion=None):
            if self.model.training:  # what the model runs on: the batch as the engine distorts it
                inputs.append(x.copy() if distortion is None else distortion.apply(x))
            return super().forward(x, distortion)

    splits = synthetic_splits(n_train=64)
    run_dir = tmp_path / "delayed"
    prepare_run_dir(run_dir, resume=False, overwrite=False)
    config = small_config(epochs=epochs, augment="affine", augment_delay=delay, clean_epochs=clean)
    trainer = make_trainer(run_dir, config, splits, engine=Recording)
    trainer.fit()
    known = {image.tobytes() for image in splits.x_train}
    assert len(inputs) == 2 * epochs  # two batches of 32 an epoch
    for epoch in range(1, epochs + 1):
        batches = inputs[2 * (epoch - 1): 2 * epoch]
        as_drawn = [image.tobytes() in known for batch in batches for image in batch]
        assert not any(as_drawn) if epoch in distorted_epochs else all(as_drawn), epoch


def test_the_train_command_takes_the_distortion_its_delay_and_test_tracking(tmp_path, mnist_dir, capsys):
    import json

    from lenet5.cli.main import main

    run_dir = tmp_path / "run"
    small = ["--train-limit", "600", "--validation", "100", "--test-limit", "200", "--batch-size", "100",
             "--no-progress", "--data-dir", str(mnist_dir), "--out", str(run_dir)]
    assert main(["train", "--epochs", "1", "--augment", "elastic", "--augment-strength", "0.5",
                 "--augment-delay", "3", "--clean-epochs", "2", *small]) == 0
    settings = json.loads((run_dir / "model.json").read_text())["hyperparameters"]
    assert (settings["augment"], settings["augment_strength"], settings["augment_delay"],
            settings["clean_epochs"]) == ("elastic", 0.5, 3, 2)
    # One epoch never reaches distortions that start after epoch 3, so none are announced.
    assert "no distortions (its elastic ones start after epoch 3)" in capsys.readouterr().out
    assert json.loads((run_dir / "history.json").read_text())[0]["test_accuracy"] is None
    # --track-test may be turned on when resuming; the distortion may not change.
    assert main(["train", "--epochs", "2", "--resume", "--track-test", *small]) == 0
    history = json.loads((run_dir / "history.json").read_text())
    assert history[0]["test_accuracy"] is None and 0 < history[1]["test_accuracy"] <= 1
    assert "test_acc" in capsys.readouterr().out
    assert main(["train", "--epochs", "3", "--resume", "--augment", "shift", *small]) == 1
    assert "--augment cannot change them" in capsys.readouterr().err
    assert main(["train", "--epochs", "3", "--resume", "--clean-epochs", "1", *small]) == 1
    assert "--clean-epochs cannot change them" in capsys.readouterr().err


def test_the_report_draws_each_kind_on_the_same_digits(tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image

    from lenet5.report import plot_distortions

    digits_uint8 = (np.clip(digits(count=12)[:, 0] + 0.4, 0, 1) * 255).astype(np.uint8)
    before = digits_uint8.copy()
    path = plot_distortions(digits_uint8, "affine", 1.0, tmp_path / "distortions.png")
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:  # twelve digits across, four rows (as drawn and three kinds)
        assert image.format == "PNG" and image.width > 2 * image.height > 400
    assert np.array_equal(digits_uint8, before)
