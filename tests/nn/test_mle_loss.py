"""MLELoss: value and gradient against a PyTorch twin and against finite differences; its
curvature against the diagonal of the Hessian from torch autograd (zero: E is linear in the
logits); the first term of MAPLoss; finite for penalties of 1e4."""

import warnings

import numpy as np
import pytest
import torch

from lenet5.nn import MAPLoss, MLELoss

from .test_loss import labels_of
from .test_map_loss import KINDS, as_rows, assert_matches_twin, finite_difference_error, penalty_logits
from .torch_twins import DTYPES, assert_close, mle_loss_twin


def loss_configs(count, seed):
    """Random batches (one of a single pattern), class counts and penalty scales."""
    rng = np.random.default_rng(seed)
    configs = []
    for index in range(count):
        batch = 1 if index % 4 == 0 else int(rng.integers(2, 7))
        classes, scale = int(rng.integers(2, 11)), float(rng.choice([0.1, 1.0, 5.0, 30.0]))
        configs.append(pytest.param(batch, classes, scale, id=f"n{batch}-k{classes}-scale{scale:g}"))
    return configs


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch, classes, scale", loss_configs(count=8, seed=21))
def test_value_and_gradient_match_torch(batch, classes, scale, kind, dtype):
    rng = np.random.default_rng(batch * 100 + classes)
    logits = penalty_logits(batch, classes, scale, rng, dtype)
    labels = labels_of(kind, batch, classes, rng, dtype)
    assert_matches_twin(MLELoss(), mle_loss_twin, logits, labels, dtype)


@pytest.mark.parametrize("kind", KINDS)
def test_gradient_is_the_gradient_of_the_value(kind):
    rng = np.random.default_rng(3)
    logits = penalty_logits(5, 7, 4.0, rng)
    labels = labels_of(kind, 5, 7, rng)
    assert finite_difference_error(MLELoss(), logits, labels) < 1e-8
    _, grad = MLELoss().value_and_grad(logits, labels)
    assert np.count_nonzero(grad) == np.count_nonzero(as_rows(labels, 7))  # only the labelled classes move


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch, classes, scale", loss_configs(count=4, seed=5))
def test_curvature_is_the_diagonal_of_the_hessian_of_each_patterns_loss_which_is_zero(batch, classes, scale, kind):
    rng = np.random.default_rng(batch * 10 + classes)
    logits = penalty_logits(batch, classes, scale, rng)
    labels = labels_of(kind, batch, classes, rng)
    curvature = MLELoss().curvature(logits, labels)
    targets = torch.tensor(as_rows(labels, classes))
    hessian = torch.autograd.functional.hessian(lambda z: mle_loss_twin(z, targets), torch.tensor(logits))
    diagonal = torch.diagonal(hessian.reshape(batch * classes, batch * classes)).reshape(batch, classes)
    assert curvature.shape == (batch, classes) and curvature.dtype == logits.dtype
    assert_close(curvature, diagonal, np.float64, "curvature")
    assert not curvature.any()


def test_it_is_the_first_term_of_the_map_criterion():
    """E_MAP − E_MLE = 1/N Σ_n log(e^{−j} + Σ_i e^{z_i}), whatever the labels."""
    rng = np.random.default_rng(11)
    logits, labels = penalty_logits(6, 10, 20.0, rng), rng.integers(0, 10, 6)
    j = 0.1
    tl = torch.tensor(logits)
    log_total = torch.logsumexp(torch.cat([tl, torch.full((6, 1), -j, dtype=tl.dtype)], dim=1), dim=1).mean()
    assert MAPLoss(j)(logits, labels) - MLELoss()(logits, labels) == pytest.approx(log_total.item(), rel=1e-12)
    assert MLELoss()(logits, labels) == pytest.approx(-logits[np.arange(6), labels].mean(), rel=1e-12)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_penalties_of_1e4_give_the_exact_finite_value_without_warnings(dtype):
    rng = np.random.default_rng(8)
    penalties = rng.uniform(1e4, 2e4, (4, 10)).astype(dtype)
    labels = rng.integers(0, 10, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, grad = MLELoss().value_and_grad(-penalties, labels)
    assert value == pytest.approx(float(penalties[np.arange(4), labels].astype(np.float64).mean()), rel=1e-6)
    np.testing.assert_array_equal(grad, -np.eye(10, dtype=dtype)[labels] / 4)


def test_repr_and_backward_before_a_value():
    assert repr(MLELoss()) == "MLELoss()"
    with pytest.raises(RuntimeError, match="MLELoss.backward called before the loss was computed"):
        MLELoss().backward()
