"""Learning-rate schedules against torch.optim.lr_scheduler, epoch by epoch."""

import math

import pytest
import torch

from lenet5.nn import ConstantLR, CosineLR, EpochListLR, ExponentialLR, StepLR


def torch_rates(make_scheduler, base_lr, epochs):
    """The learning rate torch uses in each epoch 0..epochs−1, stepping once per epoch."""
    parameter = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([parameter], lr=base_lr)
    scheduler = make_scheduler(optimizer)
    rates = []
    for _ in range(epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


@pytest.mark.parametrize("step_size, gamma", [(1, 0.5), (3, 0.1), (4, 0.7)])
def test_step_lr_matches_torch(step_size, gamma):
    ours = StepLR(0.1, step_size, gamma)
    expected = torch_rates(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size, gamma), 0.1, 15)
    assert [ours(epoch) for epoch in range(15)] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("gamma", [0.5, 0.9, 0.99])
def test_exponential_lr_matches_torch(gamma):
    ours = ExponentialLR(0.01, gamma)
    expected = torch_rates(lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma), 0.01, 20)
    assert [ours(epoch) for epoch in range(20)] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("total_epochs, min_lr", [(1, 0.0), (5, 0.0), (10, 1e-4), (7, 0.002)])
def test_cosine_lr_matches_torch_cosine_annealing_up_to_the_last_epoch_then_holds(total_epochs, min_lr):
    ours = CosineLR(0.01, total_epochs, min_lr)
    expected = torch_rates(
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total_epochs, eta_min=min_lr), 0.01,
        total_epochs + 1)
    assert [ours(epoch) for epoch in range(total_epochs + 1)] == pytest.approx(expected, rel=1e-9, abs=1e-15)
    # torch's schedule is periodic and climbs again after T_max; ours stays at the minimum.
    assert ours(total_epochs + 3) == pytest.approx(min_lr, abs=1e-15)


def test_epoch_list_lr_lecun_1998_rates():
    from lenet5.zoo.lecun1998 import PAPER_LEARNING_RATES

    schedule = EpochListLR(PAPER_LEARNING_RATES)
    expected = [5e-4] * 2 + [2e-4] * 3 + [1e-4] * 3 + [5e-5] * 4 + [1e-5] * 8
    assert [schedule(epoch) for epoch in range(20)] == expected
    assert schedule(100) == 1e-5
    assert schedule.base_lr == 5e-4


def test_constant_and_epoch_list_rates():
    assert [ConstantLR(0.3)(epoch) for epoch in (0, 5, 50)] == [0.3, 0.3, 0.3]
    schedule = EpochListLR([0.1, 0.05])
    assert [schedule(epoch) for epoch in range(4)] == [0.1, 0.05, 0.05, 0.05]


@pytest.mark.parametrize("build, message", [
    (lambda: StepLR(0.1, 0), "StepLR: step_size must be >= 1"),
    (lambda: StepLR(0.0, 2), "StepLR: base_lr must be > 0"),
    (lambda: CosineLR(0.1, 0), "CosineLR: total_epochs must be >= 1"),
    (lambda: ExponentialLR(-1.0, 0.9), "ExponentialLR: base_lr must be > 0"),
    (lambda: EpochListLR([]), "EpochListLR: rates must be a non-empty list"),
    (lambda: EpochListLR([0.1, 0.0]), "EpochListLR: rates must be"),
])
def test_bad_schedules_are_refused(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_schedules_are_pure_functions_of_the_epoch():
    schedule = CosineLR(0.1, 10)
    later = schedule(7)
    assert [schedule(epoch) for epoch in range(10)][7] == later == schedule(7)
    assert math.isclose(schedule(5), 0.05)
