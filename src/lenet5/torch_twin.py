"""A PyTorch copy of a lenet5 model, layer for layer, with the same weights.

Used by the tests (outputs and gradients must agree) and by the benchmark (the same network
timed in both). Needs `torch`, which lenet5 itself never imports.
"""

from __future__ import annotations

import numpy as np

from . import nn as ln


def torch_twin(model: ln.Sequential, dtype=None):
    """A `torch.nn.Sequential` computing what `model` computes, weights copied."""
    import torch
    from torch import nn

    dtype = dtype or (torch.float64 if model.parameters()[0].value.dtype == np.float64 else torch.float32)
    layers = [_twin_layer(layer, nn, torch) for layer in model.layers]
    twin = nn.Sequential(*layers).to(dtype)
    copy_weights(model, twin)
    twin.train(model.training)
    return twin


def copy_weights(model: ln.Sequential, twin) -> None:
    import torch

    with torch.no_grad():
        for layer, torch_layer in zip(model.layers, twin):
            if isinstance(layer, _Subsample):
                torch_layer.weight.copy_(torch.from_numpy(layer.weight.value))
                torch_layer.bias.copy_(torch.from_numpy(layer.bias.value))
                continue
            for name, parameter in layer.named_parameters():
                value = parameter.value
                if name == "weight" and getattr(layer, "connections", None) is not None:
                    value = value * layer.connections[:, :, None, None]
                getattr(torch_layer, name).copy_(torch.from_numpy(np.ascontiguousarray(value)))
            for name, buffer in layer.named_buffers():
                getattr(torch_layer, name).copy_(torch.from_numpy(buffer))


_Subsample = ln.Subsampling


def _twin_layer(layer, nn, torch):
    if isinstance(layer, ln.Conv2D):
        return nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                         layer.padding, bias=layer.bias is not None)
    if isinstance(layer, ln.Dense):
        return nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    if isinstance(layer, ln.BatchNorm2D):
        return nn.BatchNorm2d(layer.num_features, eps=layer.eps, momentum=layer.momentum)
    if isinstance(layer, ln.BatchNorm1D):
        return nn.BatchNorm1d(layer.num_features, eps=layer.eps, momentum=layer.momentum)
    if isinstance(layer, ln.MaxPool2D):
        return nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding)
    if isinstance(layer, ln.Subsampling):
        return _TorchSubsampling(layer.channels, layer.kernel_size, nn, torch)
    if isinstance(layer, ln.AvgPool2D):
        return nn.AvgPool2d(layer.kernel_size, layer.stride, layer.padding)
    if isinstance(layer, ln.Dropout):
        return nn.Dropout(layer.p)
    simple = {ln.ReLU: nn.ReLU, ln.Sigmoid: nn.Sigmoid, ln.Tanh: nn.Tanh, ln.Flatten: nn.Flatten,
              ln.Softmax: lambda: nn.Softmax(dim=1)}
    if type(layer) in simple:
        return simple[type(layer)]()
    if isinstance(layer, ln.ScaledTanh):
        return _TorchScaledTanh(nn)
    if isinstance(layer, ln.RBF):
        return _TorchRBF(layer, nn, torch)
    raise TypeError(f"no PyTorch twin for {type(layer).__name__}")


def _TorchScaledTanh(nn):
    class ScaledTanh(nn.Module):
        def forward(self, x):
            return 1.7159 * (x * (2.0 / 3.0)).tanh()

    return ScaledTanh()


def _TorchSubsampling(channels, kernel, nn, torch):
    class Subsampling(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.empty(channels))
            self.bias = nn.Parameter(torch.empty(channels))

        def forward(self, x):
            sums = nn.functional.avg_pool2d(x, kernel) * (kernel[0] * kernel[1])
            return sums * self.weight[:, None, None] + self.bias[:, None, None]

    return Subsampling()


def _TorchRBF(layer, nn, torch):
    class RBF(nn.Module):
        """−Σ_j (x_j − centers_ij)²; fixed centres are a buffer, as in lenet5.nn.RBF."""

        def __init__(self):
            super().__init__()
            centers = torch.empty(layer.out_features, layer.in_features)
            if layer.trainable:
                self.centers = nn.Parameter(centers)
            else:
                self.register_buffer("centers", centers)

        def forward(self, x):
            return -((x[:, None, :] - self.centers[None]) ** 2).sum(dim=2)

    return RBF()
