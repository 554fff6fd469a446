"""Sequential: layers applied in order, with the conveniences of a model."""

from __future__ import annotations

from collections import Counter
from typing import Callable, Iterable

import numpy as np

from .checks import as_float
from .module import Module
from .predicting import Predicting, evaluating


def leaf_layers(model) -> list:
    """The layers of `model` in execution order, nested Sequentials opened up."""
    if isinstance(model, Sequential):
        return [leaf for layer in model.layers for leaf in leaf_layers(layer)]
    return [model]


class Sequential(Module, Predicting):
    """Layers run one after another; backward runs them in reverse.

    Args:
        *layers: Modules, or (name, Module) pairs. Unnamed layers are named by kind and
            position among their kind: conv1, bn1, relu1, pool1, conv2, ..., fc1.
        name: the model's name, shown by `summary`.
        input_shape: one sample's shape, e.g. (1, 28, 28); lets `summary()` run without data.

    Parameters are named `<layer>.<parameter>`, e.g. `conv1.weight`.
    """

    prefix = "block"

    def __init__(self, *layers, name: str = "sequential", input_shape: Iterable[int] | None = None) -> None:
        super().__init__()
        self.name = name
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.layer_names: list[str] = []
        counts: Counter = Counter()
        for item in layers:
            layer_name, layer = item if isinstance(item, tuple) else (None, item)
            if not isinstance(layer, Module):
                raise ValueError(f"Sequential: expected layers, found {type(layer).__name__}")
            if layer_name is None:
                counts[layer.prefix] += 1
                layer_name = f"{layer.prefix}{counts[layer.prefix]}"
            if layer_name in self.layer_names or hasattr(self, layer_name):
                raise ValueError(f"Sequential: duplicate or reserved layer name {layer_name!r}")
            setattr(self, layer_name, layer)
            self.layer_names.append(layer_name)

    @property
    def layers(self) -> list[Module]:
        return [getattr(self, name) for name in self.layer_names]

    def __iter__(self):
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layer_names)

    def __getitem__(self, key):
        if isinstance(key, str):
            return getattr(self, key)
        return self.layers[key]

    # -- passes --------------------------------------------------------------------------
    def forward(self, x):
        x = as_float(x)
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def stages(self, x):
        """Yields (name, layer, its output) for each layer in turn: `forward`, one stage at a
        time, for looking inside the network (the report's and the served page's feature maps)."""
        x = as_float(x)
        for name, layer in zip(self.layer_names, self.layers):
            x = layer.forward(x)
            yield name, layer, x

    def backward(self, dout):
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def backward_curvature(self, d2out):
        for layer in reversed(self.layers):
            d2out = layer.backward_curvature(d2out)
        return d2out

    def output_shape(self, input_shape):
        for layer in self.layers:
            input_shape = layer.output_shape(input_shape)
        return input_shape

    # -- using a trained model -----------------------------------------------------------
    def predict_logits(self, x, batch_size: int = 64) -> np.ndarray:
        """Logits (N, K) of the eval-mode model, `batch_size` samples at a time; the model's
        modes are put back after."""
        with evaluating(self):
            chunks = [self.forward(x[start : start + batch_size]) for start in range(0, len(x), batch_size)]
        return np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)

    # -- inspection ----------------------------------------------------------------------
    def summary(self, input_shape=None, print_fn: Callable[[str], None] | None = print) -> str:
        """A Keras-style table of layers, output shapes, connections and parameter counts, from
        shapes alone.

        Per layer: connections as LeCun et al. (1998) count them (each output unit's inputs,
        its bias included, times the output units; 0 for element-wise layers); trainable
        parameters (weights a connection table masks out are not: C3 of LeNet-5 has 1,516, not
        the 2,416 of a dense 5×5×6×16); fixed ones (buffers: BatchNorm's statistics, fixed RBF
        centres); and Param #, the two together.
        """
        shape = tuple(input_shape) if input_shape is not None else self.input_shape
        if shape is None:
            raise ValueError("Sequential.summary: give input_shape (one sample, e.g. (1, 28, 28))")
        rows = [("Layer (type)", "Output Shape", "Connections", "Trainable", "Fixed", "Param #")]
        connections = trainable = frozen = 0
        for name, layer in zip(self.layer_names, self.layers):
            input_of_layer, shape = shape, layer.output_shape(shape)
            links, learnt, fixed = (layer_connections(layer, input_of_layer, shape), trainable_count(layer),
                                    layer.num_parameters(trainable=False))
            connections, trainable, frozen = connections + links, trainable + learnt, frozen + fixed
            rows.append((f"{name} ({type(layer).__name__})", str((None,) + tuple(shape)),
                         f"{links:,}", f"{learnt:,}", f"{fixed:,}", f"{learnt + fixed:,}"))
        widths = [max(len(row[i]) for row in rows) + 3 for i in range(len(rows[0]))]
        line_width = sum(widths)

        def format_row(row):
            return row[0].ljust(widths[0]) + row[1].ljust(widths[1]) + "".join(
                cell.rjust(width) for cell, width in zip(row[2:], widths[2:]))

        itemsize = self.parameters()[0].value.itemsize if self.parameters() else 4
        lines = [f'Model: "{self.name}"', "-" * line_width, format_row(rows[0]), "=" * line_width]
        lines += [format_row(row) for row in rows[1:]]
        lines += ["=" * line_width]
        for label, count in (("Total", trainable + frozen), ("Trainable", trainable), ("Non-trainable", frozen)):
            lines.append(f"{label} params: {count:,} ({_bytes(count * itemsize)})")
        lines.append(f"Connections: {connections:,}")
        lines.append("-" * line_width)
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def extra_repr(self):
        return ", ".join(f"{name}={layer!r}" for name, layer in zip(self.layer_names, self.layers))


def _bytes(count: int) -> str:
    for unit in ("B", "KB", "MB"):
        if count < 1024 or unit == "MB":
            return f"{count:.2f} {unit}"
        count /= 1024
    return f"{count:.2f} MB"


def trainable_count(layer: Module) -> int:
    """The layer's trainable parameters (Conv2D leaves out the weights its connection table masks)."""
    return layer.num_parameters()


def layer_connections(layer: Module, input_shape, output_shape) -> int:
    """Connections as LeCun et al. (1998) count them: for each output unit, its inputs and its
    bias; 0 for layers that act on each value alone (activations, BatchNorm, Flatten)."""
    from .conv import Conv2D
    from .dense import Dense
    from .pooling import AvgPool2D, MaxPool2D, Subsampling
    from .rbf import RBF

    units = int(np.prod(output_shape))
    if isinstance(layer, Conv2D):
        kh, kw = layer.kernel_size
        inputs_seen = (np.full(layer.out_channels, layer.in_channels) if layer.connections is None
                       else layer.connections.sum(axis=1))
        per_map = inputs_seen * kh * kw + (layer.bias is not None)
        return int(per_map.sum()) * units // layer.out_channels
    if isinstance(layer, Dense):
        return units * (layer.in_features + (layer.bias is not None))
    if isinstance(layer, Subsampling):
        return units * (layer.kernel_size[0] * layer.kernel_size[1] + 1)
    if isinstance(layer, (AvgPool2D, MaxPool2D)):
        return units * layer.kernel_size[0] * layer.kernel_size[1]
    if isinstance(layer, RBF):
        return units * layer.in_features
    return 0
