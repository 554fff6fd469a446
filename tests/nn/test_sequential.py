"""Sequential: summary without data, prediction that leaves the model's modes alone, the
classic loss/backward/update loop, and a whole-model gradient check."""

import numpy as np
import pytest
import torch

from lenet5 import nn as ln
from lenet5.nn import SoftmaxCrossEntropy, check_model

from .torch_twins import assert_close, randomise


def conv_stack(seed=0, dropout=True, input_shape=(1, 8, 8)):
    rng = np.random.default_rng(seed)
    layers = [
        ln.Conv2D(1, 4, 3, padding=1, rng=rng), ln.BatchNorm2D(4), ln.ReLU(), ln.MaxPool2D(2),
        ln.Conv2D(4, 6, 3, bias=False, rng=rng), ln.Tanh(), ln.AvgPool2D(2),
        ln.Flatten(), ln.Dense(6, 5, rng=rng), ln.BatchNorm1D(5), ln.ReLU(),
    ]
    if dropout:
        layers.append(ln.Dropout(0.3, rng=seed))
    layers.append(ln.Dense(5, 3, rng=rng))
    model = ln.Sequential(*layers, name="stack", input_shape=input_shape)
    for layer in model:
        randomise(layer, rng)
    return model


def torch_stack(model):
    """conv_stack without dropout as a torch.nn.Sequential, weights and statistics copied."""
    twin = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 6, 3, bias=False), torch.nn.Tanh(), torch.nn.AvgPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(6, 5), torch.nn.BatchNorm1d(5), torch.nn.ReLU(), torch.nn.Linear(5, 3),
    ).double()
    ours = [layer for layer in model if not isinstance(layer, ln.Dropout)]
    with torch.no_grad():
        for layer, torch_layer in zip(ours, twin):
            for name, parameter in layer.named_parameters():
                getattr(torch_layer, name).copy_(torch.tensor(parameter.value))
            for name, buffer in layer.named_buffers():
                getattr(torch_layer, name).copy_(torch.tensor(buffer))
    return twin.train(model.training)


# -- summary ----------------------------------------------------------------------------------------
def test_summary_lists_layers_shapes_and_counts_like_the_torch_twin_without_running_data(monkeypatch):
    model = conv_stack(dropout=False)
    twin = torch_stack(model)
    for layer in model:  # summary needs shapes only: any forward pass would fail here
        monkeypatch.setattr(layer, "forward", None)
    printed = []
    text = model.summary(print_fn=printed.append)
    assert printed == [text]
    lines = text.splitlines()
    assert lines[0] == 'Model: "stack"'
    assert "Layer (type)" in text and "Output Shape" in text and "Param #" in text

    x = torch.zeros((2, 1, 8, 8), dtype=torch.float64)
    for name, layer, torch_layer in zip(model.layer_names, model, twin):
        x = torch_layer(x)
        count = sum(p.numel() for p in torch_layer.parameters())
        count += sum(b.numel() for n, b in torch_layer.named_buffers() if "running" in n)
        row = next(line for line in lines if line.startswith(f"{name} ({type(layer).__name__})"))
        assert str((None,) + tuple(x.shape[1:])) in row, row
        assert row.split()[-1] == f"{count:,}", row

    trainable = sum(p.numel() for p in twin.parameters())
    frozen = sum(b.numel() for n, b in twin.named_buffers() if "running" in n)
    assert model.num_parameters() == trainable and model.num_parameters(trainable=False) == frozen
    assert f"Total params: {trainable + frozen:,} (" in text
    assert f"Trainable params: {trainable:,} (" in text
    assert f"Non-trainable params: {frozen:,} (" in text


def test_summary_takes_the_input_shape_as_an_argument_or_refuses_without_one():
    model = conv_stack(input_shape=None)
    with pytest.raises(ValueError, match="give input_shape"):
        model.summary(print_fn=None)
    assert "(None, 4, 12, 12)" in model.summary((1, 12, 12), print_fn=None)


# -- prediction -------------------------------------------------------------------------------------
def data(count=7, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((count, 1, 8, 8)), rng.integers(0, 3, count)


def test_predictions_are_those_of_the_eval_mode_model_for_every_sample():
    model = conv_stack().to(np.float64)
    x, labels = data()
    expected = model.eval().forward(x)
    model.train()
    logits = model.predict_logits(x, batch_size=3)  # 3 + 3 + a last partial batch of 1
    assert_close(logits, expected, np.float64, "logits")
    probabilities = model.predict_proba(x, batch_size=3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-12)
    assert np.all(probabilities >= 0)
    assert_close(probabilities, torch.softmax(torch.tensor(expected), 1), np.float64, "probabilities")
    predicted = model.predict(x, batch_size=3)
    assert predicted.dtype == np.int64 and np.array_equal(predicted, expected.argmax(axis=1))
    assert model.accuracy(x, labels) == np.mean(predicted == labels)
    assert model.accuracy(x, np.eye(3)[labels]) == np.mean(predicted == labels)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "predict_logits", "accuracy"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_prediction_leaves_every_layers_mode_as_it_was(method, training):
    model = conv_stack().train(training)
    model.bn2.train(not training)  # a mixed state survives too
    before = [(name, layer.training) for name, layer in zip(model.layer_names, model)]
    x, labels = data()
    getattr(model, method)(*((x, labels) if method == "accuracy" else (x,)))
    assert model.training == training
    assert [(name, layer.training) for name, layer in zip(model.layer_names, model)] == before


def test_training_after_accuracy_still_uses_batch_statistics():
    # BatchNorm after Flatten cannot be folded into a layer before it, so the plan runs the
    # model's own BatchNorm: it must be in eval mode for the plan and in training mode after.
    rng = np.random.default_rng(2)
    model = ln.Sequential(ln.Flatten(), ln.BatchNorm1D(12), ln.ReLU(), ln.Dense(12, 3, rng=rng))
    randomise(model.bn1, rng)
    x = rng.standard_normal((5, 3, 2, 2))
    before = model.forward(x)
    evaluated = model.eval().forward(x)
    model.train()
    np.testing.assert_allclose(model.predict_logits(x), evaluated, rtol=1e-5, atol=1e-6)
    model.accuracy(x, np.zeros(5, np.int64))
    np.testing.assert_allclose(model.forward(x), before, rtol=1e-6)


# -- a training step, by hand --------------------------------------------------------------------------
def test_forward_loss_backward_matches_torch():
    model = conv_stack(dropout=False).to(np.float64)
    twin = torch_stack(model)
    x, labels = data()
    loss, dlogits = SoftmaxCrossEntropy.value_and_grad(model.forward(x), labels)
    dx = model.backward(dlogits)
    tx = torch.tensor(x, requires_grad=True)
    reference = torch.nn.functional.cross_entropy(twin(tx), torch.tensor(labels))
    reference.backward()
    assert loss == pytest.approx(reference.item(), rel=1e-12)
    assert_close(dx, tx.grad, np.float64, "input gradient")
    for (name, parameter), torch_parameter in zip(model.named_parameters(), twin.parameters()):
        if name in ("conv1.bias", "fc1.bias"):  # BatchNorm follows: the true gradient is 0, both are noise
            assert np.abs(parameter.grad).max() < 1e-12 and torch_parameter.grad.abs().max() < 1e-12
            continue
        assert_close(parameter.grad, torch_parameter.grad, np.float64, name)


def test_forward_and_backward_leave_their_arguments_untouched():
    model = conv_stack()
    x, _ = data()
    x_before = x.copy()
    out = model.forward(x)
    dout = np.random.default_rng(4).standard_normal(out.shape)
    dout_before = dout.copy()
    model.backward(dout)
    assert np.array_equal(x, x_before) and np.array_equal(dout, dout_before)


# -- whole-model gradient check ----------------------------------------------------------------------
@pytest.mark.parametrize("with_labels", [False, True], ids=["vjp", "cross_entropy"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_whole_model_gradient_check(training, with_labels):
    model = conv_stack(seed=5).train(training)
    x, labels = data(count=4, seed=6)
    errors = check_model(model, x, labels if with_labels else None, seed=7, max_entries=12)
    assert set(errors) == {"input"} | {name for name, _ in model.named_parameters()}
    assert max(errors.values()) < 1e-6, errors


def test_layers_are_reachable_by_name_and_position():
    model = conv_stack()
    assert len(model) == 13 and model["conv2"] is model[4] and list(model)[0] is model.conv1
    assert model.layer_names[:4] == ["conv1", "bn1", "relu1", "pool1"]
    assert model.output_shape((1, 8, 8)) == (3,)
