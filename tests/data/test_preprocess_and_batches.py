"""Preprocessing values, validation splits and the mini-batch iterator."""

import numpy as np
import pytest

from lenet5.data import iterate_minibatches, num_batches, preprocess, train_validation_split


def test_lecun_normalisation_background_and_ink():
    images = np.array([[[0, 255], [255, 0]]], np.uint8)
    out = preprocess(images, "lecun", pad=2)
    assert out.shape == (1, 1, 6, 6) and out.dtype == np.float32
    assert out[0, 0, 2, 2] == pytest.approx(-0.1) and out[0, 0, 2, 3] == pytest.approx(1.175)
    assert np.allclose(out[0, 0, 0], -0.1)  # padding is background, not 0


def test_scale_and_standardize():
    images = np.array([[[0, 51, 255]]], np.uint8)
    assert np.allclose(preprocess(images, "scale")[0, 0, 0], [0, 0.2, 1])
    standardized = preprocess(images, "standardize", pad=1, mean=0.2, std=0.5)
    assert np.allclose(standardized[0, 0, 1, 1:4], [-0.4, 0.0, 1.6], atol=1e-6)
    assert standardized[0, 0, 0, 0] == pytest.approx(-0.4)


def test_preprocess_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown method"):
        preprocess(np.zeros((1, 2, 2), np.uint8), "whiten")
    with pytest.raises(ValueError, match="needs the dataset's mean and std"):
        preprocess(np.zeros((1, 2, 2), np.uint8), "standardize")


def test_validation_split_is_seeded_disjoint_and_complete():
    x, y = np.arange(100), np.arange(100) % 10
    tx, ty, vx, vy = train_validation_split(x, y, 20, seed=3)
    assert len(vx) == 20 and len(tx) == 80 and set(tx) | set(vx) == set(range(100)) and not set(tx) & set(vx)
    again = train_validation_split(x, y, 20, seed=3)
    assert np.array_equal(again[2], vx)
    assert not np.array_equal(train_validation_split(x, y, 20, seed=4)[2], vx)
    assert len(train_validation_split(x, y, 0.1, seed=0)[2]) == 10
    assert len(train_validation_split(x, y, 0, seed=0)[2]) == 0


def test_every_sample_once_per_epoch_new_order_each_epoch_and_last_partial_batch():
    x, y = np.arange(103), np.arange(103)
    rng = np.random.default_rng(0)
    epochs = [list(iterate_minibatches(x, y, 10, rng)) for _ in range(2)]
    for batches in epochs:
        seen = np.concatenate([b for b, _ in batches])
        assert sorted(seen) == list(range(103))  # without replacement, none dropped
        assert [len(b) for b, _ in batches] == [10] * 10 + [3]
        assert all(np.array_equal(bx, by) for bx, by in batches)  # images stay with labels
    assert not np.array_equal(np.concatenate([b for b, _ in epochs[0]]), np.concatenate([b for b, _ in epochs[1]]))
    dropped = list(iterate_minibatches(x, y, 10, rng, drop_last=True))
    assert [len(b) for b, _ in dropped] == [10] * 10
    assert num_batches(103, 10) == 11 and num_batches(103, 10, drop_last=True) == 10
