"""The reference engine: one class per layer, NCHW, each forward and backward on one screen.

Where to find a layer's backward pass, `<file>: <Layer>.backward` (and, for the layers of
LeNet-5 1998, the second-order pass `<Layer>.backward_curvature` beside it):
    conv.py        Conv2D (pad → im2col → one matrix product; backward: two products, col2im)
    im2col.py      im2col and col2im, the windows Conv2D multiplies
    pooling.py     MaxPool2D, AvgPool2D, Subsampling (LeNet-5 1998's trainable pooling)
    batchnorm.py   BatchNorm1D, BatchNorm2D
    activations.py ReLU, Sigmoid, Tanh, ScaledTanh, Softmax
    dropout.py     Dropout
    dense.py       Dense, Flatten
    rbf.py         RBF (LeNet-5 1998's output: negated Euclidean distances to fixed ±1 centres)
    loss.py        SoftmaxCrossEntropy.value_and_grad, MAPLoss.value_and_grad and
                   MLELoss.value_and_grad (value and gradient of the loss), MAPLoss.curvature
                   and MLELoss.curvature (its diagonal second derivative)
    sequential.py  Sequential: the layers in order, and in reverse for backward
Around them: module.py (the base class: parameters, buffers, modes, state dicts),
parameter.py, init.py (weight initialisers), optim.py (SGD, Adam, AdamW, SDLM), curvature.py
(estimate_curvature: the Gauss–Newton diagonal SDLM steps with), schedules.py, gradcheck.py
(finite differences).

This package is the lesson and the oracle. Training runs on `lenet5.fast`, which wraps these
layers (other memory layout, blocked convolution, fused steps, folded inference plans,
several processes) and is tested against them; nothing here imports it.
"""

from .activations import ReLU, ScaledTanh, Sigmoid, Softmax, Tanh, softmax
from .batchnorm import BatchNorm1D, BatchNorm2D
from .conv import Conv2D
from .curvature import estimate_curvature
from .dense import Dense, Flatten
from .dropout import Dropout
from .gradcheck import check_layer, check_model, numerical_gradient, rel_error
from .loss import MAPLoss, MLELoss, SoftmaxCrossEntropy
from .module import Module
from .optim import SDLM, SGD, Adam, AdamW, Optimizer
from .parameter import Parameter
from .pooling import AvgPool2D, MaxPool2D, Subsampling
from .rbf import RBF
from .schedules import ConstantLR, CosineLR, EpochListLR, ExponentialLR, StepLR
from .sequential import Sequential

__all__ = [
    "Adam", "AdamW", "AvgPool2D", "BatchNorm1D", "BatchNorm2D", "ConstantLR", "Conv2D",
    "CosineLR", "Dense", "Dropout", "EpochListLR", "ExponentialLR", "Flatten", "MAPLoss", "MLELoss",
    "MaxPool2D", "Module", "Optimizer", "Parameter", "RBF", "ReLU", "SDLM", "SGD", "ScaledTanh",
    "Sequential", "Sigmoid", "Softmax", "SoftmaxCrossEntropy", "StepLR", "Subsampling", "Tanh",
    "check_layer", "check_model", "estimate_curvature", "numerical_gradient", "rel_error", "softmax",
]
