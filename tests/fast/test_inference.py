"""The inference plan computes the eval-mode model: BatchNorm folded, Dropout dropped, pooling
before ReLU, nested models included; the model itself is left as it was."""

import numpy as np
import pytest

from lenet5 import nn as ln
from lenet5.fast import FastModel
from lenet5.fast.plan import inference_layers
from lenet5.nn.sequential import leaf_layers
from lenet5.zoo.models import build_model

from ..nn.torch_twins import connection_table, randomise


def models():
    rng = np.random.default_rng(0)
    return {
        "conv_bn_relu_pool": ln.Sequential(
            ln.Conv2D(2, 3, 3, padding=1, rng=rng), ln.BatchNorm2D(3), ln.ReLU(), ln.MaxPool2D(2),
            ln.Flatten(), ln.Dense(12, 4, rng=rng)),
        "masked_conv_without_bias_bn": ln.Sequential(
            ln.Conv2D(2, 3, 3, bias=False, connections=connection_table(rng, 3, 2), rng=rng), ln.BatchNorm2D(3),
            ln.Tanh(), ln.AvgPool2D(2), ln.Flatten(), ln.Dense(3, 4, rng=rng)),
        "dense_bn_dropout": ln.Sequential(
            ln.Flatten(), ln.Dense(32, 6, rng=rng), ln.BatchNorm1D(6), ln.ReLU(), ln.Dropout(0.5, rng=1),
            ln.Dense(6, 4, rng=rng)),
        "bn_after_relu_and_padded_pool": ln.Sequential(
            ln.Conv2D(2, 3, 3, rng=rng), ln.ReLU(), ln.BatchNorm2D(3), ln.MaxPool2D(3, stride=2, padding=1),
            ln.Flatten(), ln.Dense(3, 4, rng=rng)),
        "sigmoids_between_linear_layers": ln.Sequential(
            ln.Conv2D(2, 3, 3, padding=1, rng=rng), ln.Sigmoid(), ln.AvgPool2D(2),
            ln.Conv2D(3, 3, 2, bias=False, connections=connection_table(rng, 3, 3), rng=rng), ln.Sigmoid(),
            ln.Flatten(), ln.Dense(3, 5, rng=rng), ln.Sigmoid(), ln.Dense(5, 4, rng=rng), ln.Sigmoid()),
        "sigmoid_before_a_padded_conv": ln.Sequential(
            ln.Conv2D(2, 3, 3, padding=1, rng=rng), ln.Sigmoid(), ln.Conv2D(3, 2, 3, padding=1, rng=rng),
            ln.Flatten(), ln.Dense(32, 4, rng=rng)),
        "nested": ln.Sequential(
            ("block", ln.Sequential(ln.Conv2D(2, 3, 3, padding=1, rng=rng), ln.BatchNorm2D(3), ln.Dropout(0.5, rng=2))),
            ln.ReLU(), ln.MaxPool2D(2), ln.Flatten(), ln.Dense(12, 4, rng=rng)),
    }


def prepared(name):
    model = models()[name].to(np.float64)
    rng = np.random.default_rng(3)
    for layer in model.layers + list(getattr(model, "block", [])):
        randomise(layer, rng)
    for _ in range(3):  # running statistics that are not the initial ones
        model.forward(rng.normal(1.0, 2.0, (5, 2, 4, 4)))
    return model


@pytest.mark.parametrize("name", list(models()))
def test_predict_logits_equal_the_eval_forward_and_leave_the_model_alone(name):
    model = prepared(name)
    x = np.random.default_rng(4).standard_normal((6, 2, 4, 4))
    state = model.state_dict()
    expected = model.eval().forward(x)
    model.train()
    logits = FastModel(model).predict_logits(x, batch_size=4)
    np.testing.assert_allclose(logits, expected, rtol=1e-10, atol=1e-12)
    for key, value in model.state_dict().items():
        assert np.array_equal(value, state[key]), key


def test_the_plan_follows_the_current_weights():
    model = prepared("conv_bn_relu_pool")
    x = np.random.default_rng(5).standard_normal((3, 2, 4, 4))
    fast = FastModel(model)
    first = fast.predict_logits(x)
    model.conv1.weight.value *= 2
    model.bn1.running_mean += 1
    assert not np.allclose(fast.predict_logits(x), first)
    np.testing.assert_allclose(fast.predict_logits(x), model.eval().forward(x), rtol=1e-10, atol=1e-12)


def test_predict_between_forward_and_backward_leaves_the_gradients_alone():
    model = FastModel(build_model("relu", seed=0).to(np.float64))
    rng = np.random.default_rng(1)
    x, upstream = rng.standard_normal((4, 1, 32, 32)), rng.standard_normal((4, 10))
    model.forward(x)
    expected = model.backward(upstream)
    model.forward(x)
    model.predict(rng.standard_normal((7, 1, 32, 32)))
    assert np.array_equal(model.backward(upstream), expected)


def test_sigmoids_between_linear_layers_run_as_tanh_and_the_others_stay():
    kinds = [type(layer).__name__ for layer in inference_layers(leaf_layers(build_model("classic")))]
    assert "Sigmoid" not in kinds and kinds.count("Tanh") == 4
    last = [type(layer).__name__ for layer in inference_layers(leaf_layers(prepared("sigmoids_between_linear_layers")))]
    assert last.count("Tanh") == 3 and last[-1] == "Sigmoid"  # nothing linear after the last one
    padded = [type(layer).__name__ for layer in inference_layers(leaf_layers(prepared("sigmoid_before_a_padded_conv")))]
    assert padded.count("Sigmoid") == 1
