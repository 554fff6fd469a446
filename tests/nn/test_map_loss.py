"""MAPLoss: value and gradient against a PyTorch twin and against finite differences; its
curvature against the diagonal of the Hessian from torch autograd; stable for penalties of 1e4."""

import warnings

import numpy as np
import pytest
import torch

from lenet5.nn import MAPLoss, MLELoss, numerical_gradient, rel_error

from .torch_twins import DTYPES, assert_close, map_loss_twin
from .test_loss import labels_of

KINDS = ["integer", "one_hot", "probabilities"]


def loss_configs(count=16, seed=98):
    """Random batches and class counts; penalties from small (every class competes with the
    rubbish class e^{−j}) to large (only the nearest classes matter)."""
    rng = np.random.default_rng(seed)
    configs = []
    for index in range(count):
        batch = 1 if index % 5 == 0 else int(rng.integers(2, 7))
        classes = int(rng.integers(2, 11))
        scale = float(rng.choice([0.1, 1.0, 5.0, 30.0]))
        j = float(rng.choice([0.1, 1.0, -2.0]))
        configs.append(pytest.param(batch, classes, scale, j, id=f"n{batch}-k{classes}-scale{scale:g}-j{j:g}"))
    return configs


def penalty_logits(batch, classes, scale, rng, dtype=np.float64):
    """Logits as an RBF gives them: minus non-negative penalties."""
    return (-scale * rng.random((batch, classes)) ** 2).astype(dtype)


def as_rows(labels, classes, dtype=np.float64):
    labels = np.asarray(labels)
    return np.eye(classes, dtype=dtype)[labels] if labels.ndim == 1 else labels.astype(dtype)


def assert_matches_twin(loss, twin, logits, labels, dtype):
    """`loss`'s value and gradient against its PyTorch `twin` (mean over the batch), for both
    RBF criteria."""
    batch, classes = logits.shape
    value = loss(logits, labels)
    tl = torch.tensor(logits, requires_grad=True)
    expected = twin(tl, torch.tensor(as_rows(labels, classes, dtype))) / batch
    expected.backward()
    assert isinstance(value, float)
    assert_close(value, expected.item(), dtype, "loss")
    assert loss.backward().dtype == dtype
    assert_close(loss.backward(), tl.grad, dtype, "gradient")


def finite_difference_error(loss, logits, labels) -> float:
    """rel_error between `loss`'s gradient and central differences of its value (float64)."""
    _, grad = loss.value_and_grad(logits, labels)
    numeric = numerical_gradient(lambda: loss.value_and_grad(logits, labels)[0], logits, h=1e-5)
    return rel_error(grad, numeric)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch, classes, scale, j", loss_configs())
def test_value_and_gradient_match_torch(batch, classes, scale, j, kind, dtype):
    rng = np.random.default_rng(batch * 100 + classes)
    logits = penalty_logits(batch, classes, scale, rng, dtype)
    labels = labels_of(kind, batch, classes, rng, dtype)
    assert_matches_twin(MAPLoss(j), map_loss_twin(j), logits, labels, dtype)


@pytest.mark.parametrize("kind", KINDS)
def test_gradient_is_the_gradient_of_the_value(kind):
    rng = np.random.default_rng(3)
    logits = penalty_logits(5, 7, 4.0, rng)
    labels = labels_of(kind, 5, 7, rng)
    assert finite_difference_error(MAPLoss(0.5), logits, labels) < 1e-8


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch, classes, scale, j", loss_configs(count=8, seed=4))
def test_curvature_is_the_diagonal_of_the_hessian_of_each_patterns_loss(batch, classes, scale, j, kind):
    """The docstring says: the exact diagonal of ∂²E_n/∂z², not divided by N. The Hessian of
    the summed loss is block-diagonal over patterns, so its diagonal is each pattern's."""
    rng = np.random.default_rng(batch * 10 + classes)
    logits = penalty_logits(batch, classes, scale, rng)
    labels = labels_of(kind, batch, classes, rng)
    curvature = MAPLoss(j).curvature(logits, labels)
    targets = torch.tensor(as_rows(labels, classes))
    hessian = torch.autograd.functional.hessian(lambda z: map_loss_twin(j)(z, targets), torch.tensor(logits))
    diagonal = torch.diagonal(hessian.reshape(batch * classes, batch * classes)).reshape(batch, classes)
    assert curvature.shape == (batch, classes) and (curvature >= 0).all()
    assert_close(curvature, diagonal, np.float64, "curvature")


def test_curvature_vanishes_when_every_penalty_is_far_above_j():
    """What SDLM meets at the start of training: with penalties of ~100 the softmax part of E
    is flat, so h ≈ 0 and μ alone bounds the step."""
    loss = MAPLoss()
    far = loss.curvature(np.full((2, 10), -100.0), np.array([3, 4]))
    near = loss.curvature(np.zeros((2, 10)), np.array([3, 4]))
    assert far.max() < 1e-40 < near.min()


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_penalties_of_1e4_give_the_exact_finite_value_without_warnings(dtype):
    """All penalties huge: every e^{−y} underflows beside e^{−j}, so E = mean(y_D) − j exactly.
    One penalty 0 and the rest huge: E = log(e^{−j} + 1), the loss's floor."""
    rng = np.random.default_rng(8)
    penalties = rng.uniform(1e4, 2e4, (4, 10)).astype(dtype)
    labels = rng.integers(0, 10, 4)
    loss = MAPLoss(0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, grad = loss.value_and_grad(-penalties, labels)
        assert value == pytest.approx(float(penalties[np.arange(4), labels].astype(np.float64).mean()) - 0.1,
                                      rel=1e-6)
        np.testing.assert_allclose(grad, -np.eye(10)[labels] / 4, atol=1e-12)
        penalties[np.arange(4), labels] = 0
        floor, _ = loss.value_and_grad(-penalties, labels)
        assert floor == pytest.approx(np.log(np.exp(-0.1) + 1), rel=1e-6)
        positive, grad = loss.value_and_grad(penalties, labels)  # logits of +1e4 too
        assert np.isfinite(positive) and np.isfinite(grad).all()


def test_value_is_the_batch_mean_and_the_rubbish_class_takes_its_share_of_the_gradient():
    rng = np.random.default_rng(9)
    logits, labels = penalty_logits(6, 5, 3.0, rng), rng.integers(0, 5, 6)
    loss = MAPLoss(0.7)
    value, grad = loss.value_and_grad(logits, labels)
    rows = [loss.value_and_grad(logits[n : n + 1], labels[n : n + 1])[0] for n in range(6)]
    assert value == pytest.approx(np.mean(rows), rel=1e-12)
    # Unlike softmax cross-entropy's, a row sums to −(the rubbish class's probability) / N.
    rubbish = np.exp(-0.7) / (np.exp(-0.7) + np.exp(logits).sum(axis=1))
    np.testing.assert_allclose(grad.sum(axis=1), -rubbish / 6, rtol=1e-10)


def test_j_sets_how_much_the_rubbish_class_competes():
    logits, labels = np.array([[-1.0, -2.0, -3.0]]), np.array([0])
    values = [MAPLoss(j)(logits, labels) for j in (-1.0, 0.1, 3.0)]
    assert values[0] > values[1] > values[2]
    assert MAPLoss().j == 0.1


@pytest.mark.parametrize("logits, labels, message", [
    (np.zeros(3), np.array([0]), r"expected logits of shape \(N, K\), found \(3,\)"),
    (np.zeros((2, 3)), np.array([0]), "2 logit rows but 1 labels"),
    (np.zeros((2, 3)), np.array([0, 3]), r"labels must be in \[0, 2\], found 0..3"),
    (np.zeros((2, 3)), np.array([0.0, 1.0]), "integer labels expected"),
    (np.zeros((2, 3)), np.zeros((2, 4)), r"labels must be shape \(2,\) or \(2, 3\), found \(2, 4\)"),
])
@pytest.mark.parametrize("method", ["value_and_grad", "curvature"])
@pytest.mark.parametrize("loss", [MAPLoss(), MLELoss()], ids=["map", "mle"])
def test_bad_labels_or_logits_are_refused_by_both_criteria_with_the_shapes_named(logits, labels, message, method,
                                                                               loss):
    with pytest.raises(ValueError, match=f"{type(loss).__name__}: " + message):
        getattr(loss, method)(logits, labels)


def test_bad_j_and_backward_before_a_value_are_errors():
    with pytest.raises(ValueError, match="j must be a finite number, found nan"):
        MAPLoss(float("nan"))
    with pytest.raises(RuntimeError, match="before the loss was computed"):
        MAPLoss().backward()
