"""SGD (plain, momentum, Nesterov), Adam and AdamW against torch.optim, with weight decay;
state dicts that resume identically; zero_grad."""

import numpy as np
import pytest
import torch

from lenet5 import nn as ln
from lenet5.errors import CheckpointError

from .torch_twins import assert_close

SHAPES = [(3, 4), (5,), (2, 3, 2, 2)]

# name: (ours, torch's), each a function of (parameters, weight_decay)
OPTIMISERS = {
    "sgd": (lambda ps, wd: ln.SGD(ps, lr=0.1, weight_decay=wd),
            lambda ts, wd: torch.optim.SGD(ts, lr=0.1, weight_decay=wd)),
    "momentum": (lambda ps, wd: ln.SGD(ps, lr=0.05, momentum=0.9, weight_decay=wd),
                 lambda ts, wd: torch.optim.SGD(ts, lr=0.05, momentum=0.9, weight_decay=wd)),
    "nesterov": (lambda ps, wd: ln.SGD(ps, lr=0.05, momentum=0.8, nesterov=True, weight_decay=wd),
                 lambda ts, wd: torch.optim.SGD(ts, lr=0.05, momentum=0.8, nesterov=True, weight_decay=wd)),
    # eps large enough that where it enters the update shows
    "adam": (lambda ps, wd: ln.Adam(ps, lr=0.01, betas=(0.8, 0.95), eps=1e-3, weight_decay=wd),
             lambda ts, wd: torch.optim.Adam(ts, lr=0.01, betas=(0.8, 0.95), eps=1e-3, weight_decay=wd)),
    "adam_decoupled": (lambda ps, wd: ln.Adam(ps, lr=0.01, eps=1e-3, weight_decay=wd, decoupled_weight_decay=True),
                       lambda ts, wd: torch.optim.AdamW(ts, lr=0.01, eps=1e-3, weight_decay=wd)),
    "adamw": (lambda ps, wd: ln.AdamW(ps, lr=0.02, betas=(0.85, 0.99), weight_decay=wd),
              lambda ts, wd: torch.optim.AdamW(ts, lr=0.02, betas=(0.85, 0.99), weight_decay=wd)),
}


def parameters(seed=0):
    rng = np.random.default_rng(seed)
    return [ln.Parameter(rng.standard_normal(shape), f"p{i}") for i, shape in enumerate(SHAPES)]


def gradients(step, seed=1):
    rng = np.random.default_rng([seed, step])
    return [rng.standard_normal(shape) for shape in SHAPES]


def set_gradients(params, grads):
    for parameter, grad in zip(params, grads):
        parameter.grad[...] = grad  # in place: the optimiser's flat buffer holds the gradients


@pytest.mark.parametrize("weight_decay", [0.0, 0.1], ids=["no_decay", "decay"])
@pytest.mark.parametrize("name", OPTIMISERS)
def test_matches_torch_optim_step_by_step(name, weight_decay):
    make_ours, make_torch = OPTIMISERS[name]
    params = parameters()
    tensors = [torch.tensor(p.value.copy(), requires_grad=True) for p in params]
    ours, theirs = make_ours(params, weight_decay), make_torch(tensors, weight_decay)
    for step in range(6):
        grads = gradients(step)
        set_gradients(params, grads)
        for tensor, grad in zip(tensors, grads):
            tensor.grad = torch.tensor(grad)
        ours.step()
        theirs.step()
        for parameter, tensor in zip(params, tensors):
            assert_close(parameter.value, tensor.detach(), np.float64, f"{name} step {step + 1} {parameter.name}")
    moved = [np.abs(p.value - q.value).max() for p, q in zip(params, parameters())]
    assert min(moved) > 1e-3  # the steps did something


@pytest.mark.parametrize("name", OPTIMISERS)
def test_state_dict_round_trip_through_npz_continues_identically(name, tmp_path):
    make = OPTIMISERS[name][0]
    params = parameters()
    first = make(params, 0.05)
    for step in range(3):
        set_gradients(params, gradients(step))
        first.step()
    np.savez(tmp_path / "optimizer.npz", **first.state_dict())
    clones = [ln.Parameter(p.value.copy(), p.name) for p in params]
    second = make(clones, 0.05)
    with np.load(tmp_path / "optimizer.npz") as stored:
        second.load_state_dict(dict(stored))
    assert second.steps == first.steps == 3 and second.lr == first.lr
    for step in range(3, 6):
        set_gradients(params, gradients(step))
        set_gradients(clones, gradients(step))
        first.step()
        second.step()
    for a, b in zip(params, clones):
        assert np.array_equal(a.value, b.value)


@pytest.mark.parametrize("name, keys", [
    ("sgd", []), ("momentum", ["velocity"]), ("nesterov", ["velocity"]),
    ("adam", ["mean", "sq"]), ("adamw", ["mean", "sq"]),
])
def test_state_dict_names_each_parameters_state(name, keys):
    params = parameters()
    optimizer = OPTIMISERS[name][0](params, 0.0)
    set_gradients(params, gradients(0))
    optimizer.step()
    state = optimizer.state_dict()
    expected = {"steps", "lr"} | {f"state.{i}.{key}" for i in range(len(SHAPES)) for key in keys}
    assert set(state) == expected
    for i, shape in enumerate(SHAPES):
        for key in keys:
            assert state[f"state.{i}.{key}"].shape == shape


def test_loading_state_for_other_parameters_is_refused():
    params = parameters()
    optimizer = ln.Adam(params)
    set_gradients(params, gradients(0))
    optimizer.step()
    state = optimizer.state_dict()
    other = ln.Adam([ln.Parameter(np.zeros((4, 3))), ln.Parameter(np.zeros(5)), ln.Parameter(np.zeros((2, 3, 2, 2)))])
    with pytest.raises(CheckpointError, match="state.0.mean"):
        other.load_state_dict(state)
    state.pop("state.1.sq")
    with pytest.raises(CheckpointError, match="'sq' is missing"):
        ln.Adam(parameters()).load_state_dict(state)


def test_zero_grad_clears_every_gradient_also_after_parameters_were_replaced():
    model = ln.Sequential(ln.Dense(4, 3, rng=0), ln.BatchNorm1D(3), ln.Dense(3, 2, rng=1))
    optimizer = ln.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = np.random.default_rng(0).standard_normal((5, 4))
    model.forward(x)
    model.backward(np.ones((5, 2)))
    assert any(np.any(p.grad != 0) for p in model.parameters())
    optimizer.zero_grad()
    assert all(np.all(p.grad == 0) for p in model.parameters())
    model.to(np.float64)  # new arrays: the optimiser no longer holds views of them
    model.forward(x)
    model.backward(np.ones((5, 2)))
    optimizer.zero_grad()
    assert all(np.all(p.grad == 0) for p in model.parameters())


def test_a_step_after_parameters_were_replaced_updates_the_new_arrays():
    params = parameters()
    optimizer = ln.SGD(params, lr=0.1)
    for parameter in params:
        parameter.astype(np.float32)
    set_gradients(params, gradients(0))
    expected = [p.value - np.float32(0.1) * p.grad for p in params]
    optimizer.step()
    for parameter, value in zip(params, expected):
        np.testing.assert_allclose(parameter.value, value, rtol=1e-6)
        assert parameter.value.dtype == np.float32


def test_steps_through_a_model_use_the_gradients_its_backward_fills():
    rng = np.random.default_rng(2)
    model = ln.Sequential(ln.Dense(4, 3, rng=0)).to(np.float64)
    twin = torch.nn.Linear(4, 3).double()
    with torch.no_grad():
        twin.weight.copy_(torch.tensor(model.fc1.weight.value))
        twin.bias.copy_(torch.tensor(model.fc1.bias.value))
    ours, theirs = ln.Adam(model.parameters(), lr=0.1), torch.optim.Adam(twin.parameters(), lr=0.1)
    for _ in range(4):
        x, labels = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
        ours.zero_grad()
        _, dlogits = ln.SoftmaxCrossEntropy.value_and_grad(model.forward(x), labels)
        model.backward(dlogits)
        ours.step()
        theirs.zero_grad()
        torch.nn.functional.cross_entropy(twin(torch.tensor(x)), torch.tensor(labels)).backward()
        theirs.step()
    assert_close(model.fc1.weight.value, twin.weight.detach(), np.float64, "weight")
    assert_close(model.fc1.bias.value, twin.bias.detach(), np.float64, "bias")


@pytest.mark.parametrize("build, message", [
    (lambda ps: ln.SGD(ps, lr=0), "lr must be > 0"),
    (lambda ps: ln.SGD(ps, lr=0.1, weight_decay=-1), "weight_decay must be >= 0"),
    (lambda ps: ln.SGD(ps, lr=0.1, momentum=1.0), "momentum must be in"),
    (lambda ps: ln.SGD(ps, lr=0.1, nesterov=True), "nesterov needs momentum"),
    (lambda ps: ln.Adam(ps, betas=(0.9, 1.0)), "betas must be in"),
    (lambda ps: ln.Adam([]), "non-empty list of Parameters"),
    (lambda ps: ln.SGD([np.zeros(3)], lr=0.1), "non-empty list of Parameters"),
])
def test_bad_hyperparameters_are_refused(build, message):
    with pytest.raises(ValueError, match=message):
        build(parameters())
