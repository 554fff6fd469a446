"""SDLM: one step is the paper's formula; h stays fixed between set_curvature calls; state
dicts carry h and resume bit for bit; a 1998-style network trained with it learns."""

import numpy as np
import pytest

from lenet5 import nn as ln
from lenet5.errors import CheckpointError

from .torch_twins import connection_table

SHAPES = [(3, 4), (5,), (2, 3, 2, 2)]


def parameters(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [ln.Parameter(rng.standard_normal(shape).astype(dtype), f"p{i}") for i, shape in enumerate(SHAPES)]


def fill(params, attribute, seed):
    """Random non-negative values for each parameter's `grad` or `curvature`, in place."""
    rng = np.random.default_rng([seed, 7])
    for parameter in params:
        getattr(parameter, attribute)[...] = rng.uniform(0.0, 2.0, parameter.shape)


@pytest.mark.parametrize("weight_decay", [0.0, 0.01], ids=["no_decay", "decay"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_one_step_is_the_papers_formula(dtype, weight_decay):
    params = parameters(dtype=dtype)
    optimizer = ln.SDLM(params, lr=5e-4, mu=0.02, weight_decay=weight_decay)
    fill(params, "curvature", seed=1)
    optimizer.set_curvature()
    fill(params, "grad", seed=2)
    expected = [p.value - 5e-4 / (0.02 + p.curvature) * (p.grad + weight_decay * p.value) for p in params]
    optimizer.step()
    for parameter, value in zip(params, expected):
        assert parameter.value.dtype == dtype
        np.testing.assert_allclose(parameter.value, value, rtol=1e-6 if dtype == np.float32 else 1e-14)


def test_zero_curvature_gives_steps_of_lr_over_mu_and_large_curvature_short_ones():
    params = parameters()
    optimizer = ln.SDLM(params, lr=1e-3, mu=0.02)
    params[0].curvature[...] = 0.0
    params[1].curvature[...] = 1e6
    optimizer.set_curvature()
    before = [p.value.copy() for p in params]
    for parameter in params:
        parameter.grad[...] = 1.0
    optimizer.step()
    np.testing.assert_allclose(before[0] - params[0].value, 1e-3 / 0.02)
    assert (np.abs(before[1] - params[1].value) < 1e-8).all()


def test_set_curvature_holds_h_fixed_while_curvature_changes():
    params = parameters()
    optimizer = ln.SDLM(params, lr=0.01, mu=0.02)
    fill(params, "curvature", seed=3)
    held = [p.curvature.copy() for p in params]
    optimizer.set_curvature()
    fill(params, "curvature", seed=4)  # a new estimate, not yet handed to the optimiser
    for parameter in params:
        parameter.grad[...] = 1.0
    before = [p.value.copy() for p in params]
    optimizer.step()
    for parameter, value, h in zip(params, before, held):
        np.testing.assert_allclose(value - parameter.value, 0.01 / (0.02 + h), rtol=1e-12)

    optimizer.set_curvature()
    before = [p.value.copy() for p in params]
    optimizer.step()
    for parameter, value in zip(params, before):
        np.testing.assert_allclose(value - parameter.value, 0.01 / (0.02 + parameter.curvature), rtol=1e-12)


def test_a_step_before_any_curvature_is_refused():
    params = parameters()
    optimizer = ln.SDLM(params, lr=5e-4, mu=0.02)
    before = [p.value.copy() for p in params]
    with pytest.raises(RuntimeError, match="call estimate_curvature.*set_curvature"):
        optimizer.step()
    assert optimizer.steps == 0 and all(np.array_equal(p.value, v) for p, v in zip(params, before))


def test_negative_or_missing_curvature_is_refused():
    params = parameters()
    params[1].curvature[2] = -1.0
    with pytest.raises(ValueError, match="curvature must be finite and >= 0"):
        ln.SDLM(params, lr=5e-4, mu=0.02).set_curvature()


def test_state_dict_carries_h_and_a_resumed_run_continues_bit_for_bit(tmp_path):
    params = parameters()
    first = ln.SDLM(params, lr=0.01, mu=0.02, weight_decay=0.001)
    fill(params, "curvature", seed=5)
    first.set_curvature()
    for step in range(3):
        fill(params, "grad", seed=10 + step)
        first.step()
    state = first.state_dict()
    assert set(state) == {"steps", "lr"} | {f"state.{i}.h" for i in range(len(SHAPES))}
    np.savez(tmp_path / "optimizer.npz", **state)

    clones = [ln.Parameter(p.value.copy(), p.name) for p in params]
    second = ln.SDLM(clones, lr=0.01, mu=0.02, weight_decay=0.001)
    with np.load(tmp_path / "optimizer.npz", allow_pickle=False) as stored:
        second.load_state_dict(dict(stored))
    assert second.steps == 3
    assert all(np.array_equal(ours["h"], theirs["h"]) for ours, theirs in zip(second.state, first.state))
    fill(params, "curvature", seed=6)  # changed after saving: must not leak into either run
    for step in range(3, 6):
        fill(params, "grad", seed=10 + step)
        fill(clones, "grad", seed=10 + step)
        first.step()
        second.step()
    for a, b in zip(params, clones):
        assert np.array_equal(a.value, b.value)


def test_h_for_other_parameters_is_refused():
    params = parameters()
    optimizer = ln.SDLM(params, lr=5e-4, mu=0.02)
    fill(params, "curvature", seed=1)
    optimizer.set_curvature()
    other = ln.SDLM([ln.Parameter(np.zeros((4, 3))), ln.Parameter(np.zeros(5)), ln.Parameter(np.zeros((2, 3, 2, 2)))], lr=5e-4, mu=0.02)
    with pytest.raises(CheckpointError, match="state.0.h"):
        other.load_state_dict(optimizer.state_dict())


@pytest.mark.parametrize("build, message", [
    (lambda ps: ln.SDLM(ps, lr=5e-4, mu=0), "mu must be > 0, found 0"),
    (lambda ps: ln.SDLM(ps, lr=-1, mu=0.02), "lr must be > 0"),
    (lambda ps: ln.SDLM(ps, lr=5e-4, mu=0.02, weight_decay=-1), "weight_decay must be >= 0"),
])
def test_bad_hyperparameters_are_refused(build, message):
    with pytest.raises(ValueError, match=message):
        build(parameters())


def lenet5_1998(seed=0):
    """The 1998 network's layers at the paper's sizes: C1 Conv2D(1, 6, 5), S2, C3 with a
    connection table, S4, C5, F6 (84 units), each followed by the scaled tanh, then RBF(84, 10)
    with ±1 centres. Inputs (N, 1, 32, 32)."""
    rng = np.random.default_rng(seed)
    return ln.Sequential(
        ln.Conv2D(1, 6, 5, rng=rng), ln.Subsampling(6), ln.ScaledTanh(),
        ln.Conv2D(6, 16, 5, connections=connection_table(rng, 16, 6), rng=rng), ln.Subsampling(16), ln.ScaledTanh(),
        ln.Conv2D(16, 120, 5, rng=rng), ln.ScaledTanh(), ln.Flatten(),
        ln.Dense(120, 84, rng=rng), ln.ScaledTanh(), ln.RBF(84, 10, rng=rng),
        input_shape=(1, 32, 32),
    )


def prototype_patterns(count, seed=1):
    """Ten random 32×32 prototypes, and `count` noisy copies of them with their classes."""
    rng = np.random.default_rng(seed)
    prototypes = rng.choice([-0.1, 1.175], size=(10, 1, 32, 32), p=[0.8, 0.2])  # the paper's input range
    labels = rng.integers(0, 10, count)
    return prototypes[labels] + 0.3 * rng.standard_normal((count, 1, 32, 32)), labels


def test_a_few_hundred_sdlm_steps_lower_the_map_loss_of_a_1998_network():
    """The paper's loop: before each pass, estimate the curvature on 100 patterns and hold it;
    then one step per pattern, as the paper steps. Two passes over 150 patterns.

    lr is 2e-5, not the paper's 5e-4: from random weights every penalty is far above j, the
    MAP curvature is ~1e-40 (test_map_loss), so h ≈ 0 and each step is lr/μ; 5e-4/0.02 = 0.025
    per pattern makes this network diverge."""
    model = lenet5_1998()
    x, labels = prototype_patterns(150)
    loss = ln.MAPLoss()
    optimizer = ln.SDLM(model.parameters(), lr=2e-5, mu=0.02)
    start = loss(model.forward(x), labels)
    for _ in range(2):
        ln.estimate_curvature(model, loss, x[:100], labels[:100])
        optimizer.set_curvature()
        for index in range(len(x)):
            optimizer.zero_grad()
            loss(model.forward(x[index : index + 1]), labels[index : index + 1])
            model.backward(loss.backward())
            optimizer.step()
    logits = model.forward(x)
    assert optimizer.steps == 300
    assert loss(logits, labels) < 0.25 * start
    assert (logits.argmax(axis=1) == labels).mean() > 0.9
