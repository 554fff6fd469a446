"""SoftmaxCrossEntropy: value and gradient against torch's cross_entropy for integer labels and
probability rows, against finite differences, and stable for logits of ±1e4."""

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lenet5.nn import SoftmaxCrossEntropy, numerical_gradient, rel_error

from .torch_twins import DTYPES, assert_close


def loss_configs(count=20, seed=17):
    rng = np.random.default_rng(seed)
    configs = []
    for index in range(count):
        batch = 1 if index % 5 == 0 else int(rng.integers(2, 7))
        classes = int(rng.integers(2, 11))
        scale = float(rng.choice([0.1, 1.0, 10.0, 100.0]))
        configs.append(pytest.param(batch, classes, scale, id=f"n{batch}-k{classes}-scale{scale:g}"))
    return configs


def labels_of(kind, batch, classes, rng, dtype=np.float64):
    if kind == "integer":
        return rng.integers(0, classes, batch)
    if kind == "one_hot":
        return np.eye(classes, dtype=dtype)[rng.integers(0, classes, batch)]
    probabilities = np.exp(2 * rng.standard_normal((batch, classes)))
    return (probabilities / probabilities.sum(axis=1, keepdims=True)).astype(dtype)


def torch_loss(logits, labels):
    """(value, gradient w.r.t. the logits) of torch's mean cross-entropy."""
    tl = torch.tensor(logits, requires_grad=True)
    target = torch.tensor(labels)
    value = F.cross_entropy(tl, target)
    value.backward()
    return value.item(), tl.grad.numpy()


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("kind", ["integer", "one_hot", "probabilities"])
@pytest.mark.parametrize("batch, classes, scale", loss_configs())
def test_value_and_gradient_match_torch(batch, classes, scale, kind, dtype):
    rng = np.random.default_rng(batch * 100 + classes)
    logits = (scale * rng.standard_normal((batch, classes))).astype(dtype)
    labels = labels_of(kind, batch, classes, rng, dtype)
    loss = SoftmaxCrossEntropy()
    value = loss(logits, labels)
    expected_value, expected_grad = torch_loss(logits, labels)
    assert isinstance(value, float)
    assert_close(value, expected_value, dtype, "loss")
    assert loss.backward().dtype == dtype
    assert_close(loss.backward(), expected_grad, dtype, "gradient")


@pytest.mark.parametrize("kind", ["integer", "probabilities", "unnormalised"])
def test_gradient_is_the_gradient_of_the_value(kind):
    rng = np.random.default_rng(0)
    logits = 3 * rng.standard_normal((4, 5))
    if kind == "unnormalised":  # soft targets that are not distributions: still value and gradient of one function
        labels = rng.uniform(0, 2, (4, 5))
    else:
        labels = labels_of(kind, 4, 5, rng)
    loss = SoftmaxCrossEntropy()
    loss(logits, labels)
    analytic = loss.backward().copy()
    numeric = numerical_gradient(lambda: SoftmaxCrossEntropy.value_and_grad(logits, labels)[0], logits, h=1e-5,
                                 five_point=True)
    assert rel_error(analytic, numeric) < 1e-8
    expected_value, expected_grad = torch_loss(logits, labels)
    assert_close(loss(logits, labels), expected_value, np.float64, "loss")
    assert_close(loss.backward(), expected_grad, np.float64, "gradient")


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_logits_of_plus_minus_1e4_give_the_exact_finite_value_without_warnings(dtype):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], dtype)
    labels = np.array([1, 0])
    loss = SoftmaxCrossEntropy()
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        value = loss(logits, labels)
        grad = loss.backward()
    # Row 0: −log softmax = 1e4 − (−1e4) = 2e4; row 1: 2e4 + log 2 (two logits share the max).
    assert value == pytest.approx(2e4 + np.log(2) / 2, rel=1e-7)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, [[0.5, -0.5, 0.0], [-0.5, 0.25, 0.25]], atol=1e-7)
    expected_value, expected_grad = torch_loss(logits, labels)
    assert value == pytest.approx(expected_value, rel=1e-7)
    np.testing.assert_allclose(grad, expected_grad, atol=1e-7)


def test_value_is_the_batch_mean_and_gradient_rows_sum_to_zero():
    rng = np.random.default_rng(1)
    logits, labels = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    each = [SoftmaxCrossEntropy.value_and_grad(logits[i : i + 1], labels[i : i + 1])[0] for i in range(6)]
    value, grad = SoftmaxCrossEntropy.value_and_grad(logits, labels)
    assert value == pytest.approx(np.mean(each), rel=1e-12)
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-15)


@pytest.mark.parametrize("logits, labels, message", [
    (np.zeros((3, 4)), np.array([0, 1, 4]), r"labels must be in \[0, 3\], found 0..4"),
    (np.zeros((3, 4)), np.array([0, -1, 2]), r"labels must be in \[0, 3\]"),
    (np.zeros((3, 4)), np.array([0, 1]), "3 logit rows but 2 labels"),
    (np.zeros((3, 4)), np.array([0.0, 1.0, 2.0]), "integer labels expected"),
    (np.zeros((3, 4)), np.zeros((3, 5)), r"labels must be shape \(3,\) or \(3, 4\), found \(3, 5\)"),
    (np.zeros(4), np.array([0]), r"expected logits of shape \(N, K\), found \(4,\)"),
])
def test_bad_labels_or_logits_are_refused_with_the_shapes_named(logits, labels, message):
    with pytest.raises(ValueError, match="SoftmaxCrossEntropy: " + message):
        SoftmaxCrossEntropy()(logits, labels)


def test_backward_before_a_value_is_an_error():
    with pytest.raises(RuntimeError, match="before the loss was computed"):
        SoftmaxCrossEntropy().backward()
