"""A trained model as the list of operations inference runs: what every exporter translates.

    ops = inference_ops(model, preprocessing)   # [Pad, Affine, Conv, MaxPool, Relu, ...]

The list starts from raw pixels (0..255, as in the IDX files): the run's padding and
normalisation come first (`Pad` on the raw pixels, whose zeros become the paper-white
background once `Affine` maps them), then one operation per layer, in eval mode:

    Conv2D        Conv (a C3 connection table as zeroed weights)
    Subsampling   Conv, depthwise (groups = channels): each 2×2 kernel filled with the coefficient
    BatchNorm     folded into the Conv or Gemm before it (w' = w·γ/σ, b' = (b − μ)·γ/σ + β),
                  or BatchNorm when nothing foldable precedes it
    Dense         Gemm;  RBF: Rbf (its centers);  Dropout: nothing (the identity at inference)
    ReLU, Sigmoid, Tanh, Softmax, Flatten, MaxPool2D, AvgPool2D: one operation each
    ScaledTanh    ScaledTanh (amplitude, slope)

Layers are recognised by their exact class name: a subclass may compute something else, and
an unknown layer is refused by name. The ONNX graph (`onnx_graph.py`) and the NumPy int8
path (`int8.py`) both read this list, so the folding is written once. NumPy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import Lenet5Error
from ..nn.batchnorm import fold_into_linear, folds_into
from ..nn.sequential import leaf_layers


class ExportError(Lenet5Error):
    """A model, run or file that cannot be exported, or an export tool that is missing."""


@dataclass(frozen=True)
class Pad:
    """Zero padding of H and W on each side (of raw pixels: zero is the background)."""
    pad: int


@dataclass(frozen=True)
class Affine:
    """y = x·scale + offset, one scale and offset for the whole tensor (the normalisation)."""
    scale: float
    offset: float


@dataclass(frozen=True)
class Conv:
    """Cross-correlation as in `lenet5.nn.Conv2D`; weight (F, C / groups, KH, KW), bias (F,)."""
    weight: np.ndarray
    bias: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int]
    groups: int = 1


@dataclass(frozen=True)
class Gemm:
    """y = x·weightᵀ + bias; weight (out, in) as in `lenet5.nn.Dense`."""
    weight: np.ndarray
    bias: np.ndarray


@dataclass(frozen=True)
class BatchNorm:
    """Eval-mode batch normalisation over axis 1, kept when no Conv or Gemm precedes it."""
    weight: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float


@dataclass(frozen=True)
class Pool:
    """Max or average (zero padding counted, as in `lenet5.nn.AvgPool2D`) pooling."""
    kind: str  # "max" | "average"
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class Elementwise:
    """relu, sigmoid, tanh, or scaled_tanh: amplitude · tanh(slope · x)."""
    kind: str
    amplitude: float = 1.0
    slope: float = 1.0


@dataclass(frozen=True)
class Flatten:
    """(N, C, H, W) -> (N, C·H·W)."""


@dataclass(frozen=True)
class Softmax:
    """Over axis 1."""


@dataclass(frozen=True)
class Rbf:
    """logits[n, i] = −Σ_j (x[n, j] − centers[i, j])², the negated Euclidean penalties."""
    centers: np.ndarray


def preprocessing_ops(preprocessing: dict) -> list:
    """Pad, then Affine: the run's `preprocess` (see `lenet5.data.preprocess`) on raw pixels.

    The affine map is the one `pixel_table` applies, computed in float64 as it is:
    "scale" x/255, "standardize" (x/255 − mean)/std, "lecun" x/255·1.275 − 0.1.
    """
    from ..data.preprocess import LECUN_BACKGROUND, LECUN_INK

    method, pad = preprocessing["method"], int(preprocessing["pad"])
    if method == "standardize":
        mean, std = float(preprocessing["mean"]), float(preprocessing["std"])
        affine = Affine(1.0 / (255.0 * std), -mean / std)
    elif method == "lecun":
        affine = Affine((LECUN_INK - LECUN_BACKGROUND) / 255.0, LECUN_BACKGROUND)
    elif method == "scale":
        affine = Affine(1.0 / 255.0, 0.0)
    else:
        raise ExportError(f"cannot export preprocessing method {method!r}")
    return ([Pad(pad)] if pad else []) + [affine]


def inference_ops(model, preprocessing: dict) -> list:
    """The operations computing `model`'s eval-mode logits from raw pixels (see the module
    docstring); weights are float32 copies, so later training leaves them alone."""
    ops = preprocessing_ops(preprocessing)
    previous = None  # the reference layer behind ops[-1]
    for layer in leaf_layers(model):
        kind = type(layer).__name__
        translate = _TRANSLATIONS.get(kind)
        if translate is None:
            raise ExportError(f"cannot export layer {layer!r}: no ONNX mapping for {kind}")
        op = translate(layer)
        if op is None:
            continue
        if isinstance(op, BatchNorm) and previous is not None and folds_into(previous, layer):
            ops[-1] = _fold(ops[-1], op)
            continue
        ops.append(op)
        previous = layer
    return ops


def _array(value) -> np.ndarray:
    """A parameter's (or buffer's) value as a float32 copy."""
    return np.array(getattr(value, "value", value), dtype=np.float32)


def _conv(layer) -> Conv:
    weight = layer.masked(_array(layer.weight))  # C3: the weights outside the table are zero
    bias = _array(layer.bias) if layer.bias is not None else np.zeros(layer.out_channels, np.float32)
    return Conv(weight, bias, layer.stride, layer.padding)


def _subsampling(layer) -> Conv:
    """weight[c] · Σ window + bias[c] is a depthwise convolution whose kernel is all weight[c]."""
    if layer.padding != (0, 0):
        raise ExportError(f"cannot export {layer!r}: padded subsampling")
    kernel = np.ones((layer.channels, 1) + layer.kernel_size, np.float32)
    weight = kernel * _array(layer.weight)[:, None, None, None]
    return Conv(weight, _array(layer.bias), layer.stride, (0, 0), groups=layer.channels)


def _dense(layer) -> Gemm:
    bias = _array(layer.bias) if layer.bias is not None else np.zeros(layer.out_features, np.float32)
    return Gemm(_array(layer.weight), bias)


def _batchnorm(layer) -> BatchNorm:
    return BatchNorm(_array(layer.weight), _array(layer.bias), _array(layer.running_mean),
                     _array(layer.running_var), float(layer.eps))


def _pool(kind):
    return lambda layer: Pool(kind, layer.kernel_size, layer.stride, layer.padding)


def _scaled_tanh(layer) -> Elementwise:
    return Elementwise("scaled_tanh", float(layer.amplitude), float(layer.slope))


_TRANSLATIONS = {
    "Conv2D": _conv,
    "Subsampling": _subsampling,
    "Dense": _dense,
    "BatchNorm1D": _batchnorm,
    "BatchNorm2D": _batchnorm,
    "MaxPool2D": _pool("max"),
    "AvgPool2D": _pool("average"),
    "ReLU": lambda layer: Elementwise("relu"),
    "Sigmoid": lambda layer: Elementwise("sigmoid"),
    "Tanh": lambda layer: Elementwise("tanh"),
    "ScaledTanh": _scaled_tanh,
    "Softmax": lambda layer: Softmax(),
    "Flatten": lambda layer: Flatten(),
    "Dropout": lambda layer: None,  # the identity in eval mode
    "RBF": lambda layer: Rbf(_array(layer.centers)),
}


def _fold(op, norm: BatchNorm):
    """`op` changed so that its output is norm(op(x)), in float64 then rounded once."""
    weight, bias = fold_into_linear(*(np.asarray(a, np.float64) for a in (
        op.weight, op.bias, norm.weight, norm.bias, norm.mean, norm.var)), norm.eps)
    folded = {"weight": weight.astype(np.float32), "bias": bias.astype(np.float32)}
    if isinstance(op, Conv):
        return Conv(stride=op.stride, padding=op.padding, groups=op.groups, **folded)
    return Gemm(**folded)
