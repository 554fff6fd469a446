"""Preprocessing values, validation splits and the mini-batch iterator."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from lenet5.data import iterate_minibatches, num_batches, preprocess, train_validation_split


def test_lecun_background_and_ink_are_exact_and_padding_is_background():
    images = np.array([[[0, 255], [255, 0]]], np.uint8)
    out = preprocess(images, "lecun", pad=2)
    assert out.shape == (1, 1, 6, 6) and out.dtype == np.float32
    assert out[0, 0, 2, 2] == np.float32(-0.1) and out[0, 0, 2, 3] == np.float32(1.175)
    border = np.ones((6, 6), bool)
    border[2:4, 2:4] = False
    assert np.all(out[0, 0][border] == np.float32(-0.1))  # padding is paper, not 0


def test_every_pixel_value_follows_its_formula():
    images = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    x = np.arange(256, dtype=np.float64).reshape(16, 16) / 255
    assert np.allclose(preprocess(images, "scale")[0, 0], x, rtol=0, atol=1e-7)
    assert np.allclose(preprocess(images, "lecun")[0, 0], x * 1.275 - 0.1, rtol=0, atol=1e-7)
    assert np.allclose(preprocess(images, "standardize", mean=0.1307, std=0.3081)[0, 0],
                       (x - 0.1307) / 0.3081, rtol=0, atol=1e-6)


def test_padding_is_the_transformed_background_for_every_method():
    images = np.full((2, 3, 3), 200, np.uint8)
    assert np.all(preprocess(images, "scale", pad=1)[:, 0, 0] == 0)
    standardized = preprocess(images, "standardize", pad=1, mean=0.2, std=0.5)
    assert standardized.shape == (2, 1, 5, 5)
    assert np.allclose(standardized[:, 0, 0], -0.4) and np.allclose(standardized[:, 0, 2, 2], (200 / 255 - 0.2) / 0.5)


def test_a_single_image_becomes_a_batch_of_one():
    assert preprocess(np.zeros((28, 28), np.uint8), "lecun", pad=2).shape == (1, 1, 32, 32)


@pytest.mark.parametrize("kwargs, message", [
    (dict(method="whiten"), "unknown method 'whiten'; known: scale, standardize, lecun"),
    (dict(method="standardize"), "standardize needs the dataset's mean and a positive std"),
    (dict(method="standardize", mean=0.1, std=0.0), "positive std"),
    (dict(pad=-1), "pad must be an int >= 0"),
    (dict(pad=1.5), "pad must be an int >= 0"),
])
def test_preprocess_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        preprocess(np.zeros((1, 2, 2), np.uint8), **kwargs)


def test_preprocess_insists_on_uint8_pixels():
    with pytest.raises(ValueError, match="expected uint8 pixels"):
        preprocess(np.zeros((1, 2, 2), np.float32))
    with pytest.raises(ValueError, match=r"expected images of shape \(N, H, W\)"):
        preprocess(np.zeros((1, 1, 2, 2), np.uint8))


def test_validation_split_is_seeded_disjoint_and_complete():
    x, y = np.arange(100) * 10, np.arange(100)
    tx, ty, vx, vy = train_validation_split(x, y, 20, seed=3)
    assert len(vx) == 20 and len(tx) == 80 and set(ty) | set(vy) == set(range(100)) and not set(ty) & set(vy)
    assert np.array_equal(tx, ty * 10) and np.array_equal(vx, vy * 10)  # images stay with their labels
    assert np.all(np.diff(ty) > 0)  # the original order is kept within each part
    again = train_validation_split(x, y, 20, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(again, (tx, ty, vx, vy)))
    assert not np.array_equal(train_validation_split(x, y, 20, seed=4)[3], vy)


@pytest.mark.parametrize("validation, size", [(0, 0), (0.0, 0), (0.1, 10), (np.float32(0.25), 25), (99, 99),
                                              (np.int64(5), 5)])
def test_validation_as_a_count_or_a_fraction(validation, size):
    tx, ty, vx, vy = train_validation_split(np.zeros((100, 2, 2)), np.arange(100), validation, seed=0)
    assert len(vx) == len(vy) == size and len(tx) == 100 - size


@pytest.mark.parametrize("validation", [100, 1.0, -1, 1.5, "10", True])
def test_validation_that_leaves_nothing_or_makes_no_sense_is_refused(validation):
    with pytest.raises(ValueError, match="train_validation_split"):
        train_validation_split(np.zeros(100), np.zeros(100), validation, seed=0)


def test_every_sample_once_per_epoch_new_order_each_epoch_and_last_partial_batch():
    x, y = np.arange(103) * 2, np.arange(103)
    rng = np.random.default_rng(0)
    epochs = [list(iterate_minibatches(x, y, 10, rng)) for _ in range(2)]
    for batches in epochs:
        seen = np.concatenate([by for _, by in batches])
        assert sorted(seen) == list(range(103))  # without replacement, none dropped
        assert [len(bx) for bx, _ in batches] == [10] * 10 + [3]
        assert all(np.array_equal(bx, by * 2) for bx, by in batches)  # images stay with labels
    assert not np.array_equal(np.concatenate([b for _, b in epochs[0]]), np.concatenate([b for _, b in epochs[1]]))
    dropped = list(iterate_minibatches(x, y, 10, rng, drop_last=True))
    assert [len(b) for b, _ in dropped] == [10] * 10 and len(set(np.concatenate([b for _, b in dropped]))) == 100
    assert num_batches(103, 10) == 11 and num_batches(103, 10, drop_last=True) == 10


def test_same_seed_same_order_and_no_shuffle_keeps_the_stored_order():
    x = np.arange(50)
    first = [b.tolist() for b, _ in iterate_minibatches(x, x, 16, np.random.default_rng(7))]
    second = [b.tolist() for b, _ in iterate_minibatches(x, x, 16, np.random.default_rng(7))]
    assert first == second
    ordered = [b for b, _ in iterate_minibatches(x, x, 16, shuffle=False)]
    assert np.array_equal(np.concatenate(ordered), x) and [len(b) for b in ordered] == [16, 16, 16, 2]
    ordered[0][:] = -1  # a batch is a copy: changing it leaves the dataset alone
    assert x[0] == 0


def test_bad_batch_arguments_fail_when_called_not_when_iterated():
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        iterate_minibatches(np.zeros(4), np.zeros(4), 0)
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        iterate_minibatches(np.zeros(4), np.zeros(3), 2)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(n=st.integers(0, 70), batch_size=st.integers(1, 80), drop_last=st.booleans(), seed=st.integers(0, 2**16))
def test_batch_iterator_properties(n, batch_size, drop_last, seed):
    x = np.arange(n)
    batches = [bx for bx, _ in iterate_minibatches(x, x, batch_size, np.random.default_rng(seed), drop_last=drop_last)]
    assert len(batches) == num_batches(n, batch_size, drop_last)
    seen = np.concatenate(batches) if batches else np.array([], int)
    assert len(set(seen.tolist())) == len(seen)  # never a sample twice
    assert len(seen) == (n // batch_size * batch_size if drop_last else n)
    assert all(len(b) == batch_size for b in batches[:-1]) and all(0 < len(b) <= batch_size for b in batches)
