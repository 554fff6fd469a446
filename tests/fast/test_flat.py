"""FlatOptimizer, the flat-buffer opt-in: the same numbers as the reference optimiser stepping
each parameter, bit for bit, and the same checkpoint arrays."""

import numpy as np
import pytest

from lenet5 import nn as ln
from lenet5.fast import FlatOptimizer, compiled

OPTIMIZERS = {
    "sgd": lambda ps: ln.SGD(ps, lr=0.05, weight_decay=1e-3),
    "momentum": lambda ps: ln.SGD(ps, lr=0.05, momentum=0.9),
    "nesterov": lambda ps: ln.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda ps: ln.Adam(ps, lr=1e-3, weight_decay=1e-3),
    "adamw": lambda ps: ln.AdamW(ps, lr=1e-3),
    "sdlm": lambda ps: ln.SDLM(ps, lr=5e-4, mu=0.02, weight_decay=1e-4),
}


def model(seed=0):
    rng = np.random.default_rng(seed)
    return ln.Sequential(ln.Conv2D(1, 3, 3, rng=rng), ln.ReLU(), ln.Flatten(), ln.Dense(3 * 6 * 6, 4, rng=rng))


def train(optimizer, net, steps=5):
    rng = np.random.default_rng(7)
    loss = ln.SoftmaxCrossEntropy()
    for step in range(steps):
        x, y = rng.standard_normal((6, 1, 8, 8)), rng.integers(0, 4, 6)
        if isinstance(getattr(optimizer, "optimizer", optimizer), ln.SDLM) and step == 0:
            for parameter in net.parameters():
                parameter.curvature[...] = rng.random(parameter.shape)
            optimizer.set_curvature()
        optimizer.zero_grad()
        _, dlogits = loss.value_and_grad(net.forward(x), y)
        net.backward(dlogits)
        optimizer.step()
    return net


@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_a_flat_step_is_the_reference_step_bit_for_bit(kind):
    reference_net, flat_net = model(), model()
    reference = OPTIMIZERS[kind](reference_net.parameters())
    flat = FlatOptimizer(OPTIMIZERS[kind](flat_net.parameters()))
    train(reference, reference_net)
    train(flat, flat_net)
    for (name, ours), (_, theirs) in zip(flat_net.state_dict().items(), reference_net.state_dict().items()):
        assert np.array_equal(ours, theirs), name
    ours, theirs = flat.state_dict(), reference.state_dict()
    assert sorted(ours) == sorted(theirs)
    assert all(np.array_equal(ours[key], theirs[key]) for key in ours)


@pytest.mark.parametrize("kind", ["momentum", "adam", "sdlm"])
def test_loading_a_reference_state_then_stepping_flat_goes_on_bit_for_bit(kind):
    reference_net = model()
    reference = OPTIMIZERS[kind](reference_net.parameters())
    train(reference, reference_net, steps=3)
    flat_net = model()
    flat_net.load_state_dict(reference_net.state_dict())
    flat = FlatOptimizer(OPTIMIZERS[kind](flat_net.parameters()))
    flat.load_state_dict(reference.state_dict())
    rng = np.random.default_rng(11)
    x, y = rng.standard_normal((6, 1, 8, 8)), rng.integers(0, 4, 6)
    for optimizer, net in ((reference, reference_net), (flat, flat_net)):
        optimizer.zero_grad()
        _, dlogits = ln.SoftmaxCrossEntropy().value_and_grad(net.forward(x), y)
        net.backward(dlogits)
        optimizer.step()
    for (name, ours), (_, theirs) in zip(flat_net.state_dict().items(), reference_net.state_dict().items()):
        assert np.array_equal(ours, theirs), name


def test_parameters_are_views_of_one_buffer_and_flattened_again_after_a_dtype_change():
    net = model()
    flat = FlatOptimizer(ln.SGD(net.parameters(), lr=0.1, momentum=0.9))
    assert all(p.value.base is flat.flat_value for p in net.parameters())
    train(flat, net, steps=2)
    net.to(np.float32)  # rebinds every parameter's arrays
    assert not any(p.value.base is flat.flat_value for p in net.parameters())
    velocity = flat.state_dict()["state.0.velocity"]
    train(flat, net, steps=1)
    assert flat.flat_value.dtype == np.float32 and all(p.value.base is flat.flat_value for p in net.parameters())
    assert flat.state_dict()["state.0.velocity"].shape == velocity.shape


def test_the_reference_optimiser_leaves_the_models_arrays_where_they_are():
    net = model()
    arrays = [p.value for p in net.parameters()]
    optimizer = ln.Adam(net.parameters(), lr=1e-3)
    train(optimizer, net, steps=2)
    assert all(p.value is array for p, array in zip(net.parameters(), arrays))


@pytest.mark.skipif(not compiled.available(), reason="the compiled loops need Numba (lenet5[fast])")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("kind", ["adam", "sdlm"])
def test_the_compiled_update_loops_give_the_reference_rules_bits(kind, dtype):
    make = {"adam": lambda ps: ln.Adam(ps, lr=3e-3), "sdlm": lambda ps: ln.SDLM(ps, lr=5e-4, mu=0.02)}[kind]
    reference_net, flat_net = model().to(dtype), model().to(dtype)
    reference = make(reference_net.parameters())
    flat = FlatOptimizer(make(flat_net.parameters()), compiled=True)
    assert flat._compiled_update is not None  # the loop runs, not the rule
    train(reference, reference_net, steps=6)
    train(flat, flat_net, steps=6)
    for (name, ours), (_, theirs) in zip(flat_net.state_dict().items(), reference_net.state_dict().items()):
        assert ours.dtype == dtype and np.array_equal(ours, theirs), name
    ours, theirs = flat.state_dict(), reference.state_dict()
    assert all(np.array_equal(ours[key], theirs[key]) for key in theirs)


@pytest.mark.skipif(not compiled.available(), reason="the compiled loops need Numba (lenet5[fast])")
@pytest.mark.parametrize("kind", ["sgd", "momentum", "adam", "adamw", "sdlm"])
def test_settings_no_compiled_loop_covers_run_the_optimisers_own_rule(kind):
    flat = FlatOptimizer(OPTIMIZERS[kind](model().parameters()), compiled=True)  # each with weight decay, or SGD
    assert flat._compiled_update is None
