"""The gradient checker: it passes every layer in every mode, and it catches wrong ones."""

import numpy as np
import pytest

from lenet5 import nn as ln
from lenet5.nn import check_layer, check_model, numerical_gradient, rel_error
from lenet5.nn.gradcheck import has_kinks


def test_every_layer_passes_in_each_mode(case, training):
    layer, x = case
    errors = check_layer(layer.train(training), x, seed=3)
    assert set(errors) == {"input"} | {name for name, _ in layer.named_parameters()}
    assert max(errors.values()) < 1e-6, errors


class DoubledConv(ln.Conv2D):
    def backward(self, dout):
        return 2 * super().backward(dout)


class HalvedWeightGradient(ln.Dense):
    def backward(self, dout):
        before = self.weight.grad.copy()
        dx = super().backward(dout)
        self.weight.grad[...] = before + (self.weight.grad - before) / 2
        return dx


class MutatingReLU(ln.ReLU):
    def backward(self, dout):
        dout *= self._positive
        return dout


def test_a_doubled_input_gradient_is_reported():
    layer = DoubledConv(2, 3, 3, padding=1, rng=0)
    errors = check_layer(layer, np.random.default_rng(1).standard_normal((2, 2, 5, 5)))
    assert errors["input"] == pytest.approx(1 / 3, rel=1e-3)  # ‖2g − g‖ / (‖2g‖ + ‖g‖)
    assert errors["weight"] < 1e-6 and errors["bias"] < 1e-6


def test_a_wrong_parameter_gradient_is_reported_under_its_name():
    errors = check_layer(HalvedWeightGradient(4, 3, rng=0), np.random.default_rng(1).standard_normal((5, 4)))
    assert errors["weight"] == pytest.approx(1 / 3, rel=1e-3)
    assert errors["input"] < 1e-6 and errors["bias"] < 1e-6


def test_a_backward_that_modifies_dout_is_caught():
    with pytest.raises(AssertionError, match="modified its upstream gradient"):
        check_layer(MutatingReLU(), np.array([[1.0, -1.0, 2.0]]))


def test_a_wrong_layer_inside_a_model_is_caught_by_check_model():
    model = ln.Sequential(DoubledConv(1, 2, 3, rng=0), ln.Tanh(), ln.Flatten(), ln.Dense(18, 3, rng=1))
    x = np.random.default_rng(2).standard_normal((2, 1, 5, 5))
    errors = check_model(model, x, np.array([0, 2]))
    assert errors["input"] > 0.3
    assert max(errors[name] for name in ("fc1.weight", "fc1.bias", "conv1.weight", "conv1.bias")) < 1e-6


def test_rel_error():
    a = np.array([1.0, -2.0, 3.0])
    assert rel_error(a, a) == 0 and rel_error(np.zeros(3), np.zeros(3)) == 0
    assert rel_error(2 * a, a) == pytest.approx(1 / 3)
    assert rel_error(a, -a) == pytest.approx(1.0)


@pytest.mark.parametrize("five_point", [False, True])
def test_numerical_gradient_of_a_known_function_restores_the_array(five_point):
    x = np.random.default_rng(0).standard_normal((3, 4))
    before = x.copy()
    grad = numerical_gradient(lambda: float(np.sum(x**3)), x, h=1e-5, five_point=five_point)
    np.testing.assert_allclose(grad, 3 * before**2, rtol=1e-7, atol=1e-9)
    assert np.array_equal(x, before)
    some = numerical_gradient(lambda: float(np.sum(x**3)), x, h=1e-5, indices=[0, 5])
    assert np.count_nonzero(some) == 2 and some.flat[5] == pytest.approx(3 * before.flat[5] ** 2)


def test_numerical_gradient_refuses_an_array_it_cannot_perturb_in_place():
    x = np.zeros((3, 4)).T
    with pytest.raises(ValueError, match="contiguous"):
        numerical_gradient(lambda: 0.0, x)


def test_has_kinks_finds_relu_and_max_pooling_anywhere():
    assert has_kinks(ln.Sequential(ln.Sequential(ln.Tanh(), ln.MaxPool2D(2))))
    assert has_kinks(ln.ReLU())
    assert not has_kinks(ln.Sequential(ln.Conv2D(1, 1, 1), ln.AvgPool2D(2), ln.Sigmoid()))
