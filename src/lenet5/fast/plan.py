"""The inference plan: the same function as a trained model in eval mode, cheaper to run.

In eval mode BatchNorm is a fixed per-channel affine map, so it folds into the convolution
or dense layer before it (w' = w·γ/σ, b' = (b − μ)·γ/σ + β); Dropout is the identity and
goes; and ReLU followed by max-pooling becomes max-pooling followed by ReLU, which gives
the same result (ReLU is monotonic) on a quarter of the values. A sigmoid between two
linear layers becomes a tanh: σ(z) = (1 + tanh(z/2))/2, so the layer before it computes z/2
(its weights halved, exactly) and the layer after it takes tanh(z/2) with weights w/2 and
bias b + Σw/2; this saves three of the sigmoid's four passes over the maps. The plan is
rebuilt from the current weights on every call, so it never goes stale.
"""

from __future__ import annotations

import copy

import numpy as np

from ..nn import AvgPool2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D, Parameter
from ..nn import ReLU, Sigmoid, Tanh
from ..nn.batchnorm import fold_into_linear, folds_into


def inference_layers(layers) -> list:
    """Layers computing the eval-mode function of `layers` (in eval mode), with BatchNorm
    folded away.

    The plan holds shallow copies (sharing the weights), so running it leaves the model's
    own layers alone: a `predict` between a forward and its backward is harmless.
    """
    plan = []
    for layer in map(copy.copy, layers):
        if isinstance(layer, Dropout):
            continue
        if plan and folds_into(plan[-1], layer):
            plan[-1] = _fold(plan[-1], layer)
            continue
        if isinstance(layer, MaxPool2D) and plan and isinstance(plan[-1], ReLU) and not any(layer.padding):
            plan.insert(len(plan) - 1, layer)
            continue
        plan.append(layer)
    return _sigmoids_as_tanh(plan)


def _sigmoids_as_tanh(plan) -> list:
    """Each Sigmoid between a conv/dense layer and the next one (with only unpadded average
    pooling or Flatten between, which map a constant map to itself) becomes a Tanh."""
    plan = list(plan)
    for position, layer in enumerate(plan):
        if not isinstance(layer, Sigmoid) or position == 0 or not _linear(plan[position - 1]):
            continue
        following = position + 1
        while following < len(plan) and (
            isinstance(plan[following], Flatten)
            or (isinstance(plan[following], AvgPool2D) and not any(plan[following].padding))
        ):
            following += 1
        if following == len(plan) or not _linear(plan[following]) or _padded(plan[following]):
            continue
        plan[position - 1] = _halved(plan[position - 1])
        plan[position] = Tanh()
        plan[following] = _reading_tanh(plan[following])
    return plan


def _linear(layer) -> bool:
    return isinstance(layer, (Conv2D, Dense))


def _padded(layer) -> bool:
    # A padded convolution pads tanh(z/2) with 0, which is σ = 1/2, not the σ = 0 it should see.
    return isinstance(layer, Conv2D) and any(layer.padding)


def _halved(layer):
    """A copy of `layer` whose output is exactly half the layer's (w/2, b/2: powers of two)."""
    bias = layer.bias.value * 0.5 if layer.bias is not None else None
    return _with(layer, layer.weight.value * 0.5, bias)


def _reading_tanh(layer):
    """A copy of `layer` that, given s = tanh(z/2), outputs what the layer outputs given
    σ(z) = (1 + s)/2: weights w/2, bias b + Σw/2 (per output, over its inputs)."""
    weight = layer.masked(layer.weight.value) if isinstance(layer, Conv2D) else layer.weight.value
    bias = layer.bias.value if layer.bias is not None else 0.0
    return _with(layer, layer.weight.value * 0.5, bias + 0.5 * weight.reshape(weight.shape[0], -1).sum(axis=1))


def _with(layer, weight, bias):
    """A shallow copy of `layer` with new weights and bias (None: no bias), in its dtype."""
    dtype = layer.weight.value.dtype
    changed = object.__new__(type(layer))
    changed.__dict__.update(layer.__dict__)
    changed.weight = Parameter(weight.astype(dtype), "weight")
    changed.bias = Parameter(np.asarray(bias).astype(dtype), "bias") if bias is not None else None
    return changed


def _fold(layer, norm):
    """A copy of `layer` whose output equals norm(layer(x)) in eval mode."""
    bias = layer.bias.value if layer.bias is not None else np.zeros_like(norm.running_mean)
    weight, shift = fold_into_linear(layer.weight.value, bias, norm.weight.value, norm.bias.value,
                                     norm.running_mean, norm.running_var, norm.eps)
    return _with(layer, weight, shift)
