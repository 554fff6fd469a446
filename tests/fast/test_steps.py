"""Every fast step against the reference layer it runs, and every zoo model run by FastModel
against the same model run by the reference engine: same weights, batch and generator state."""

import numpy as np
import pytest

from lenet5 import nn as ln
from lenet5.fast import FastModel
from lenet5.fast.step import ReferenceStep
from lenet5.nn import SoftmaxCrossEntropy
from lenet5.zoo.models import MODELS, build_model

from ..nn.torch_twins import LAYER_CASES, make_case, max_relative_difference
from .twins import assert_step_matches_layer


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_each_step_computes_what_its_reference_layer_computes(name, training, dtype):
    layer, x = make_case(name)
    layer.train(training)
    (step,) = FastModel(layer).steps
    assert not isinstance(step, ReferenceStep), "every layer of lenet5.nn has a fast step"
    assert_step_matches_layer(step, layer, x, dtype)


def test_a_layer_without_a_fast_step_runs_its_own_passes():
    class Doubling(ln.Module):
        def forward(self, x):
            return 2 * x

        def backward(self, dout):
            return 2 * dout

    layer = Doubling()
    (step,) = FastModel(layer).steps
    assert isinstance(step, ReferenceStep)
    assert_step_matches_layer(step, layer, np.random.default_rng(0).standard_normal((3, 2, 4, 5)))


def training_step(engine, x, y):
    for parameter in engine.parameters():
        parameter.zero_grad()
    logits = engine.forward(x)
    loss, dlogits = SoftmaxCrossEntropy.value_and_grad(logits, y)
    dx = engine.backward(dlogits)
    return logits, dx, [p.grad.copy() for p in engine.parameters()]


@pytest.mark.parametrize("speedups", [dict(), dict(blocked=False, fused=False)], ids=["all", "layout-only"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", list(MODELS))
def test_fast_model_gives_the_reference_logits_and_gradients_in_float64(name, training, speedups):
    model = build_model(name, seed=1).to(np.float64).train(training)
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((9,) + MODELS[name].input_shape), rng.integers(0, 10, 9)
    generators = [m.rng for m in model.modules() if isinstance(m, ln.Dropout)]
    saved = model.state_dict(), [g.bit_generator.state for g in generators]
    expected = training_step(model, x, y)
    model.load_state_dict(saved[0])
    for generator, state in zip(generators, saved[1]):
        generator.bit_generator.state = state
    found = training_step(FastModel(model, **speedups), x, y)
    # The fused step sums BatchNorm's gradient terms in another order: equal up to rounding.
    for what, ours, reference in zip(("logits", "input gradient"), found[:2], expected[:2]):
        assert max_relative_difference(ours, reference) < 1e-10, what
    for (parameter, _), ours, reference in zip(model.named_parameters(), found[2], expected[2]):
        assert max_relative_difference(ours, reference) < 1e-10, parameter


@pytest.mark.parametrize("name", list(MODELS))
def test_predictions_through_the_plan_equal_the_reference_eval_forward(name):
    model = build_model(name, seed=3).to(np.float64)
    x = np.random.default_rng(4).standard_normal((11,) + MODELS[name].input_shape)
    for _ in range(2):  # running statistics that are not the initial ones
        model.forward(x)
    expected = model.eval().forward(x)
    model.train()
    for plan in (True, False):
        logits = FastModel(model, plan=plan).predict_logits(x, batch_size=4)
        assert max_relative_difference(logits, expected) < 1e-10
    assert model.training, "the model's own mode is put back"
