"""The engine: layers with hand-written backward passes, models, optimisers, schedules.

Where to find a layer's backward pass: `<module>.<Layer>._backward` — conv.py (Conv2D),
pooling.py (MaxPool2D, AvgPool2D, Subsampling), batchnorm.py, activations.py, dropout.py,
dense.py (Dense, Flatten), loss.py (SoftmaxCrossEntropy.value_and_grad). In training, a
Sequential runs BatchNorm2D → MaxPool2D (→ ReLU) as one step: fusion.py (NormPoolReLU._backward).
"""

from .activations import ReLU, ScaledTanh, Sigmoid, Softmax, Tanh
from .batchnorm import BatchNorm1D, BatchNorm2D
from .conv import Conv2D
from .dense import Dense, Flatten
from .dropout import Dropout
from .gradcheck import check_layer, check_model, numerical_gradient, rel_error
from .loss import SoftmaxCrossEntropy
from .module import Module
from .optim import SGD, Adam, AdamW, Optimizer
from .parallel import DataParallel, ParallelError
from .parameter import Parameter
from .pooling import AvgPool2D, MaxPool2D, Subsampling
from .schedules import ConstantLR, CosineLR, EpochListLR, ExponentialLR, StepLR
from .sequential import Sequential

__all__ = [
    "Adam", "AdamW", "AvgPool2D", "BatchNorm1D", "BatchNorm2D", "ConstantLR", "Conv2D",
    "CosineLR", "DataParallel", "Dense", "Dropout", "EpochListLR", "ExponentialLR", "Flatten", "MaxPool2D",
    "Module", "Optimizer", "ParallelError", "Parameter", "ReLU", "SGD", "ScaledTanh", "Sequential", "Sigmoid",
    "Softmax", "SoftmaxCrossEntropy", "StepLR", "Subsampling", "Tanh", "check_layer",
    "check_model", "numerical_gradient", "rel_error",
]
