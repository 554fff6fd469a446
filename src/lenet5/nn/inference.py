"""An inference plan: the same function as a trained model in eval mode, cheaper to run.

In eval mode BatchNorm is a fixed per-channel affine map, so it folds into the convolution
or dense layer before it (w' = w·γ/σ, b' = (b − μ)·γ/σ + β); Dropout is the identity and
goes; and ReLU followed by max-pooling becomes max-pooling followed by ReLU, which gives
the same result (ReLU is monotonic) on a quarter of the values. The plan is rebuilt from
the current weights on every call, so it never goes stale.
"""

from __future__ import annotations

import copy

import numpy as np

from .activations import ReLU
from .batchnorm import BatchNorm1D, BatchNorm2D
from .conv import Conv2D
from .dense import Dense
from .dropout import Dropout
from .parameter import Parameter
from .pooling import MaxPool2D


def inference_layers(layers) -> list:
    """Layers computing the eval-mode function of `layers`, with BatchNorm folded away.

    The plan holds shallow copies (sharing the weights), so running it leaves the model's
    own forward caches alone: a `predict` between a forward and its backward is harmless.
    """
    plan = []
    for layer in map(copy.copy, layers):
        if isinstance(layer, Dropout):
            continue
        if isinstance(layer, (BatchNorm1D, BatchNorm2D)) and plan and _foldable(plan[-1], layer):
            plan[-1] = _fold(plan[-1], layer)
            continue
        if isinstance(layer, MaxPool2D) and plan and isinstance(plan[-1], ReLU) and not any(layer.padding):
            plan.insert(len(plan) - 1, layer)
            continue
        plan.append(layer)
    return plan


def _foldable(previous, norm) -> bool:
    if isinstance(norm, BatchNorm2D):
        return isinstance(previous, Conv2D) and previous.out_channels == norm.num_features
    return isinstance(previous, Dense) and previous.out_features == norm.num_features


def _fold(layer, norm):
    """A copy of `layer` whose output equals norm(layer(x)) in eval mode."""
    scale = norm.weight.value / np.sqrt(norm.running_var + norm.eps)
    bias = layer.bias.value if layer.bias is not None else np.zeros_like(scale)
    shift = (bias - norm.running_mean) * scale + norm.bias.value
    folded = object.__new__(type(layer))
    folded.__dict__.update(layer.__dict__)
    weight = layer.weight.value * scale.reshape((-1,) + (1,) * (layer.weight.value.ndim - 1))
    folded.weight = Parameter(weight.astype(layer.weight.value.dtype), "weight")
    folded.bias = Parameter(shift.astype(layer.weight.value.dtype), "bias")
    return folded
