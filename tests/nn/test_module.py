"""What every layer promises (untouched arguments, dtypes, accumulating gradients, its PyTorch
twin in both modes) and what Module gives every model: dotted names, buffers, modes, strict
state dicts."""

import numpy as np
import pytest

from lenet5 import nn as ln
from lenet5.errors import CheckpointError

from .torch_twins import DTYPES, check_against_twin, randomise


# -- every layer ----------------------------------------------------------------------------------
def test_forward_leaves_its_input_untouched(case, training, layout):
    layer, x = case
    layer.train(training)
    x = layout(x)
    before = x.copy()
    layer.forward(x)
    assert np.array_equal(x, before)


def test_backward_leaves_dout_untouched(case, training, layout):
    layer, x = case
    layer.train(training)
    out = layer.forward(x)
    dout = layout(np.random.default_rng(1).standard_normal(out.shape))
    before = dout.copy()
    layer.backward(dout)
    assert np.array_equal(dout, before)


def test_results_do_not_depend_on_the_memory_layout(case, training, layout):
    layer, x = case
    layer.to(np.float64).train(training)
    generator = getattr(layer, "rng", None)
    saved = generator.bit_generator.state if generator is not None else None
    out = layer.forward(x)
    dout = np.random.default_rng(3).standard_normal(out.shape)
    dx = layer.backward(dout)
    grads = [p.grad.copy() for p in layer.parameters()]
    for parameter in layer.parameters():
        parameter.zero_grad()
    if generator is not None:  # Dropout: the same mask again
        generator.bit_generator.state = saved
    # Equal up to rounding: the order of a sum may follow the memory layout.
    np.testing.assert_allclose(layer.forward(layout(x)), out, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(layer.backward(layout(dout)), dx, rtol=1e-12, atol=1e-14)
    for parameter, grad in zip(layer.parameters(), grads):
        np.testing.assert_allclose(parameter.grad, grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_agrees_with_its_torch_twin_in_each_mode(case, training, dtype):
    layer, x = case
    check_against_twin(layer.train(training), x, dtype)


def test_float32_in_gives_float32_out_and_gradients(case, training):
    layer, x = case
    layer.train(training)
    out = layer.forward(x.astype(np.float32))
    dx = layer.backward(np.ones_like(out))
    assert out.dtype == np.float32 and dx.dtype == np.float32
    assert all(p.value.dtype == np.float32 and p.grad.dtype == np.float32 for p in layer.parameters())


def test_float64_parameters_and_input_give_float64(case, training):
    layer, x = case
    layer.to(np.float64).train(training)
    out = layer.forward(x)
    dx = layer.backward(np.ones_like(out))
    assert out.dtype == np.float64 and dx.dtype == np.float64
    assert all(p.value.dtype == np.float64 and p.grad.dtype == np.float64 for p in layer.parameters())
    assert all(buffer.dtype == np.float64 for _, buffer in layer.named_buffers())


def test_a_model_turns_integer_and_uint8_input_into_float32():
    assert ln.Sequential(ln.Conv2D(1, 2, 3, rng=0)).forward(np.ones((1, 1, 4, 4), np.uint8)).dtype == np.float32
    assert ln.Sequential(ln.ReLU()).forward(np.arange(6).reshape(2, 3)).dtype == np.float32


def test_parameter_gradients_accumulate_until_cleared(case, training):
    layer, x = case
    layer.to(np.float64).train(training)
    out = layer.forward(x)
    dout = np.random.default_rng(2).standard_normal(out.shape)
    layer.backward(dout)
    once = [p.grad.copy() for p in layer.parameters()]
    layer.backward(dout)
    for parameter, grad in zip(layer.parameters(), once):
        np.testing.assert_allclose(parameter.grad, 2 * grad, rtol=1e-14, atol=1e-300)
        parameter.zero_grad()
        assert np.all(parameter.grad == 0)


def test_repr_is_one_line_naming_the_layer(case):
    layer, _ = case
    assert "\n" not in repr(layer) and repr(layer).startswith(type(layer).__name__ + "(")


# -- names, buffers and modes ---------------------------------------------------------------------
def small_model(seed=0):
    rng = np.random.default_rng(seed)
    model = ln.Sequential(
        ln.Conv2D(1, 3, 3, padding=1, rng=rng), ln.BatchNorm2D(3), ln.ReLU(), ln.MaxPool2D(2),
        ln.Flatten(), ln.Dense(12, 5, rng=rng), ln.BatchNorm1D(5), ln.Tanh(), ln.Dropout(0.5, rng=seed),
        ln.Dense(5, 3, rng=rng), input_shape=(1, 4, 4),
    )
    for layer in model:
        randomise(layer, rng)
    return model


def test_named_parameters_are_dotted_and_exclude_buffers():
    model = small_model()
    assert [name for name, _ in model.named_parameters()] == [
        "conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias", "fc1.weight", "fc1.bias",
        "bn2.weight", "bn2.bias", "fc2.weight", "fc2.bias",
    ]
    assert [name for name, _ in model.named_buffers()] == [
        "bn1.running_mean", "bn1.running_var", "bn2.running_mean", "bn2.running_var",
    ]
    parameters = model.parameters()
    assert all(isinstance(p, ln.Parameter) for p in parameters)
    buffers = [buffer for _, buffer in model.named_buffers()]
    assert not any(p.value is buffer or np.shares_memory(p.value, buffer) for p in parameters for buffer in buffers)
    assert model.num_parameters() == 3 * 9 + 3 + 2 * 3 + 12 * 5 + 5 + 2 * 5 + 5 * 3 + 3
    assert model.num_parameters(trainable=False) == 2 * 3 + 2 * 5
    assert model.conv1.weight.name == "weight"


def test_named_layers_and_nested_models_give_dotted_names():
    inner = ln.Sequential(("encoder", ln.Dense(4, 3, rng=0)), ln.BatchNorm1D(3))
    model = ln.Sequential(("block", inner), ("head", ln.Dense(3, 2, rng=1)))
    assert [name for name, _ in model.named_parameters()] == [
        "block.encoder.weight", "block.encoder.bias", "block.bn1.weight", "block.bn1.bias", "head.weight", "head.bias",
    ]
    assert [name for name, _ in model.named_buffers()] == ["block.bn1.running_mean", "block.bn1.running_var"]
    assert model["block"] is inner and model[1] is model.head and len(model) == 2


def all_modes(module):
    yield module.training
    for _, child in module.named_children():
        yield from all_modes(child)


def test_train_and_eval_reach_every_nested_layer():
    model = ln.Sequential(("block", ln.Sequential(ln.BatchNorm1D(3), ln.Dropout(0.5))), ln.Dense(3, 2))
    assert model.eval() is model
    assert not any(all_modes(model))
    model.train()
    assert all(all_modes(model))
    model.train(False)
    assert not any(all_modes(model))


# -- state dicts ------------------------------------------------------------------------------------
def trained(model, seed=1):
    """A few training forwards, so the running statistics are not their initial values."""
    rng = np.random.default_rng(seed)
    for _ in range(3):
        model.forward(rng.normal(1.0, 2.0, (4, 1, 4, 4)))
    return model


def test_state_dict_round_trip_reproduces_the_model():
    source, target = trained(small_model(0)), small_model(1)
    state = source.state_dict()
    assert list(state) == [name for name, _ in source.named_parameters()] + [name for name, _ in source.named_buffers()]
    target.load_state_dict(state)
    for (name, a), (_, b) in zip(source.state_dict().items(), target.state_dict().items()):
        assert np.array_equal(a, b), name
    x = np.random.default_rng(2).standard_normal((3, 1, 4, 4))
    assert np.array_equal(source.eval().forward(x), target.eval().forward(x))


def test_state_dict_holds_copies():
    model = small_model()
    state = model.state_dict()
    state["conv1.weight"][...] = 7.0
    state["bn1.running_mean"][...] = 7.0
    assert not np.any(model.conv1.weight.value == 7.0) and not np.any(model.bn1.running_mean == 7.0)


def test_loading_writes_in_place_and_clears_gradients():
    model = small_model()
    optimizer = ln.SGD(model.parameters(), lr=0.1)
    model.conv1.weight.grad[...] = 1.0
    view = model.conv1.weight.value
    model.load_state_dict(small_model(5).state_dict())
    assert model.conv1.weight.value is view and np.array_equal(view, small_model(5).conv1.weight.value)
    assert np.all(model.conv1.weight.grad == 0)
    assert optimizer.parameters[0] is model.conv1.weight  # the optimiser still holds the loaded arrays


@pytest.mark.parametrize("change, parts", [
    (lambda s: s.pop("bn1.running_var"), ["missing keys: bn1.running_var"]),
    (lambda s: s.pop("fc2.bias"), ["missing keys: fc2.bias"]),
    (lambda s: s.update({"fc3.weight": np.zeros((2, 2))}), ["unexpected keys: fc3.weight"]),
    (lambda s: s.update({"conv1.weight": np.zeros((3, 1, 5, 5))}),
     ["shape mismatch for conv1.weight", "expected (3, 1, 3, 3)", "found (3, 1, 5, 5)"]),
    (lambda s: s.update({"bn2.running_mean": np.zeros(4)}),
     ["shape mismatch for bn2.running_mean", "expected (5,)", "found (4,)"]),
    (lambda s: s.update({"fc2.bias": np.array(["a", "b", "c"])}), ["fc2.bias", "numbers", "<U1"]),
    (lambda s: s.update({"bn2.running_var": np.array([None] * 5)}), ["bn2.running_var", "numbers", "object"]),
    (lambda s: (s.pop("conv1.bias"), s.update({"extra": np.zeros(1), "fc1.weight": np.zeros((12, 5))})),
     ["missing keys: conv1.bias", "unexpected keys: extra",
      "shape mismatch for fc1.weight: expected (5, 12), found (12, 5)"]),
])
def test_a_strict_load_names_each_problem_and_changes_nothing(change, parts):
    model = trained(small_model(0))
    before = model.state_dict()
    state = trained(small_model(3), seed=4).state_dict()
    change(state)
    with pytest.raises(CheckpointError) as error:
        model.load_state_dict(state)
    for part in parts:
        assert part in str(error.value), (part, str(error.value))
    for name, value in model.state_dict().items():
        assert np.array_equal(value, before[name]), name


def test_a_non_strict_load_skips_missing_and_extra_keys_but_never_a_shape_mismatch():
    model = small_model(0)
    source = trained(small_model(3))
    state = source.state_dict()
    state.pop("fc2.weight")
    state["extra"] = np.zeros(3)
    model.load_state_dict(state, strict=False)
    assert np.array_equal(model.conv1.weight.value, source.conv1.weight.value)
    assert np.array_equal(model.bn1.running_var, source.bn1.running_var)
    assert not np.array_equal(model.fc2.weight.value, source.fc2.weight.value)
    state["fc1.bias"] = np.zeros(6)
    with pytest.raises(CheckpointError, match="shape mismatch for fc1.bias"):
        model.load_state_dict(state, strict=False)


def test_loading_keeps_the_models_dtypes():
    model = small_model().to(np.float64)
    model.load_state_dict({name: value.astype(np.float32) for name, value in small_model(2).state_dict().items()})
    assert all(value.dtype == np.float64 for value in model.state_dict().values())


def test_to_converts_parameters_and_buffers_and_refuses_other_dtypes():
    model = small_model()
    assert model.to(np.float64) is model
    assert all(value.dtype == np.float64 for value in model.state_dict().values())
    with pytest.raises(ValueError, match="Sequential.to: dtype must be float32 or float64, found float16"):
        model.to(np.float16)
