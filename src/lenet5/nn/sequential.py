"""Sequential: layers applied in order, with the conveniences of a model."""

from __future__ import annotations

from collections import Counter
from typing import Callable, Iterable

import numpy as np

from .checks import as_float
from .module import Module
from .predicting import Predicting, evaluating


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

    def backward(self, dout):
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

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
        """A Keras-style table of layers, output shapes and parameter counts, from shapes alone."""
        shape = tuple(input_shape) if input_shape is not None else self.input_shape
        if shape is None:
            raise ValueError("Sequential.summary: give input_shape (one sample, e.g. (1, 28, 28))")
        rows = [("Layer (type)", "Output Shape", "Param #")]
        for name, layer in zip(self.layer_names, self.layers):
            shape = layer.output_shape(shape)
            count = layer.num_parameters() + layer.num_parameters(trainable=False)
            rows.append((f"{name} ({type(layer).__name__})", str((None,) + tuple(shape)), f"{count:,}"))
        widths = [max(len(row[i]) for row in rows) + 3 for i in range(3)]
        line_width = sum(widths)

        def format_row(row):
            return row[0].ljust(widths[0]) + row[1].ljust(widths[1]) + row[2].rjust(widths[2] - 3)

        itemsize = self.parameters()[0].value.itemsize if self.parameters() else 4
        trainable, frozen = self.num_parameters(), self.num_parameters(trainable=False)
        lines = [f'Model: "{self.name}"', "-" * line_width, format_row(rows[0]), "=" * line_width]
        lines += [format_row(row) for row in rows[1:]]
        lines += ["=" * line_width]
        for label, count in (("Total", trainable + frozen), ("Trainable", trainable), ("Non-trainable", frozen)):
            lines.append(f"{label} params: {count:,} ({_bytes(count * itemsize)})")
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
