"""RBF: finite differences and its PyTorch twin on random shapes, fixed and trainable centres;
fixed centres are a saved, never-optimised buffer; the logits rank classes by distance."""

import numpy as np
import pytest

from lenet5 import nn as ln
from lenet5.nn import check_layer

from .torch_twins import DTYPES, check_against_twin, randomise


def rbf_configs(count=12, seed=1998):
    """Random sizes, batch 1 included, every other one with trainable centres."""
    rng = np.random.default_rng(seed)
    configs = []
    for index in range(count):
        config = dict(batch=1 if index % 4 == 0 else int(rng.integers(2, 6)),
                      inputs=int(rng.integers(1, 13)), outputs=int(rng.integers(1, 11)),
                      trainable=index % 2 == 1)
        name = (f"n{config['batch']}-{config['inputs']}to{config['outputs']}"
                + ("-trainable" if config["trainable"] else "-fixed"))
        configs.append(pytest.param(config, id=name))
    return configs


CONFIGS = rbf_configs()


def make_rbf(config, seed=0):
    rng = np.random.default_rng(seed)
    layer = ln.RBF(config["inputs"], config["outputs"], trainable=config["trainable"], rng=rng)
    randomise(layer, rng)  # trainable centres become random reals, not only ±1
    x = rng.standard_normal((config["batch"], config["inputs"]))
    return layer, x


@pytest.mark.parametrize("config", CONFIGS)
def test_gradients_match_central_differences(config):
    layer, x = make_rbf(config)
    errors = check_layer(layer, x, seed=1)
    assert set(errors) == ({"input", "centers"} if config["trainable"] else {"input"})
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("config", CONFIGS)
def test_output_and_gradients_match_torch(config, dtype):
    layer, x = make_rbf(config, seed=2)
    check_against_twin(layer, x, dtype, seed=3)


def test_logits_are_negated_squared_distances_so_argmax_is_the_nearest_centre():
    rng = np.random.default_rng(5)
    layer = ln.RBF(84, 10, rng=rng)
    classes = rng.integers(0, 10, 30)
    x = layer.centers[classes] + 0.3 * rng.standard_normal((30, 84))
    logits = layer.forward(x)
    distances = ((x[:, None, :] - layer.centers[None]) ** 2).sum(axis=2)
    np.testing.assert_allclose(logits, -distances, rtol=1e-6)
    assert (logits <= 0).all()
    assert np.array_equal(logits.argmax(axis=1), classes)


def test_fixed_centres_are_a_saved_buffer_that_no_optimiser_moves():
    rng = np.random.default_rng(6)
    centers = rng.choice([-1.0, 1.0], (10, 8))
    model = ln.Sequential(ln.Dense(5, 8, rng=rng), ln.RBF(8, 10, centers=centers))
    assert [name for name, _ in model.named_parameters()] == ["fc1.weight", "fc1.bias"]
    assert model.num_parameters(trainable=False) == 80
    assert np.array_equal(model.state_dict()["rbf1.centers"], centers)
    optimizer = ln.SGD(model.parameters(), lr=0.1)
    loss = ln.MAPLoss()
    weight_before = model.fc1.weight.value.copy()
    for _ in range(3):
        optimizer.zero_grad()
        loss(model.forward(rng.standard_normal((4, 5))), rng.integers(0, 10, 4))
        model.backward(loss.backward())
        optimizer.step()
    assert not np.array_equal(model.fc1.weight.value, weight_before)
    assert np.array_equal(model.rbf1.centers, centers)

    other = ln.Sequential(ln.Dense(5, 8), ln.RBF(8, 10, rng=7))
    other.load_state_dict(model.state_dict())
    assert np.array_equal(other.rbf1.centers, centers)


def test_trainable_centres_are_a_parameter_that_an_optimiser_moves():
    layer = ln.RBF(4, 3, centers=np.ones((3, 4)), trainable=True)
    assert [name for name, _ in layer.named_parameters()] == ["centers"]
    assert layer.num_parameters() == 12 and layer.num_parameters(trainable=False) == 0
    layer.forward(np.zeros((2, 4)))
    layer.backward(np.ones((2, 3)))
    ln.SGD(layer.parameters(), lr=0.1).step()
    # ∂logit/∂c = 2(x − c) = −2 per pattern, so grad = −4 and c ← 1 − 0.1·(−4): raising every
    # logit pushes each centre away from x = 0.
    np.testing.assert_allclose(layer.centers.value, np.full((3, 4), 1.4), rtol=1e-6)


def test_default_centres_are_plus_minus_one_drawn_from_the_rng():
    first, second = ln.RBF(84, 10, rng=3), ln.RBF(84, 10, rng=3)
    assert np.array_equal(first.centers, second.centers)
    assert set(np.unique(first.centers)) == {-1.0, 1.0}
    assert not np.array_equal(first.centers, ln.RBF(84, 10, rng=4).centers)


@pytest.mark.parametrize("centers, message", [
    (np.ones((3, 4)), r"centers must be numbers of shape \(10, 84\), found float64 of shape \(3, 4\)"),
    (np.array([["a"] * 84] * 10), "centers must be numbers"),
    (np.full((10, 84), np.nan), "centers must be finite"),
])
def test_bad_centres_are_refused_with_the_shapes_named(centers, message):
    with pytest.raises(ValueError, match=message):
        ln.RBF(84, 10, centers=centers)


def test_input_of_the_wrong_width_is_refused():
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 84\), found \(2, 80\)"):
        ln.RBF(84, 10, rng=0).forward(np.zeros((2, 80)))
