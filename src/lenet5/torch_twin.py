"""A PyTorch copy of a lenet5 layer or model, with the same weights: the one twin builder.

The tests compare each layer's outputs and gradients with its twin's (`tests/nn/torch_twins.py`
calls `twin_layer` with the parameters as arguments), and the benchmarks time the same network
in both (`torch_twin`). Needs `torch`, which lenet5 itself never imports.
"""

from __future__ import annotations

import numpy as np

from . import nn as ln


def torch_twin(model: ln.Sequential, dtype=None):
    """A `torch.nn.Sequential` computing what `model` computes, weights copied, in its mode."""
    from torch import nn

    twin = nn.Sequential(*[twin_layer(layer) for layer in model.layers])
    if dtype is not None:
        twin = twin.to(dtype)
    twin.train(model.training)
    return twin


def twin_layer(layer):
    """The torch module computing what `layer` computes, its parameters and buffers copied (in
    the layer's dtype) and in the layer's mode. A C3-style connection table is a mask applied
    in the forward pass, so a masked weight gets no gradient, as in lenet5.nn.Conv2D."""
    import torch

    module = _module_for(layer)
    with torch.no_grad():
        for name, parameter in layer.named_parameters():
            getattr(module, name).data = torch.from_numpy(np.array(parameter.value))
        for name, buffer in layer.named_buffers():
            getattr(module, name).data = torch.from_numpy(np.array(buffer))
    module.train(layer.training)
    return module


def _module_for(layer):
    from torch import nn

    if isinstance(layer, ln.Conv2D):
        if layer.connections is not None:
            return _MaskedConv2d(layer)
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
        return _Subsampling(layer)
    if isinstance(layer, ln.AvgPool2D):
        return nn.AvgPool2d(layer.kernel_size, layer.stride, layer.padding, count_include_pad=True)
    if isinstance(layer, ln.Dropout):
        return nn.Dropout(layer.p)
    simple = {ln.ReLU: nn.ReLU, ln.Sigmoid: nn.Sigmoid, ln.Tanh: nn.Tanh, ln.Flatten: nn.Flatten,
              ln.Softmax: lambda: nn.Softmax(dim=1), ln.ScaledTanh: _ScaledTanh}
    if type(layer) in simple:
        return simple[type(layer)]()
    if isinstance(layer, ln.RBF):
        return _RBF(layer)
    raise TypeError(f"no PyTorch twin for {type(layer).__name__}")


# The modules PyTorch does not have, defined on first use so that importing this file needs
# no torch.
def _ScaledTanh():
    from torch import nn

    class ScaledTanh(nn.Module):
        def forward(self, x):
            return 1.7159 * (x * (2.0 / 3.0)).tanh()

    return ScaledTanh()


def _MaskedConv2d(layer):
    import torch
    from torch import nn

    class MaskedConv2d(nn.Conv2d):
        """A convolution whose input map i reaches output map o only where connections[o, i]."""

        def __init__(self):
            super().__init__(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                             layer.padding, bias=layer.bias is not None)
            self.register_buffer("mask", torch.from_numpy(layer.connections[:, :, None, None].astype(np.float64)))

        def forward(self, x):
            return self._conv_forward(x, self.weight * self.mask.to(x.dtype), self.bias)

    return MaskedConv2d()


def _Subsampling(layer):
    import torch
    from torch import nn

    kernel = layer.kernel_size

    class Subsampling(nn.Module):
        """The 1998 S-layers: each map's 2×2 sums times a trainable coefficient, plus a bias."""

        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.empty(layer.channels))
            self.bias = nn.Parameter(torch.empty(layer.channels))

        def forward(self, x):
            sums = nn.functional.avg_pool2d(x, kernel) * (kernel[0] * kernel[1])
            return sums * self.weight[:, None, None] + self.bias[:, None, None]

    return Subsampling()


def _RBF(layer):
    import torch
    from torch import nn

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
