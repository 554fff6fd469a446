"""Sequential: layers applied in order, with the conveniences of a model."""

from __future__ import annotations

from collections import Counter
from typing import Callable, Iterable

import numpy as np

from .loss import SoftmaxCrossEntropy
from .fusion import training_steps
from .inference import inference_layers
from .layout import as_float, to_batch_first, to_batch_last
from .module import Module


class Sequential(Module):
    """Layers run one after another; backward runs them in reverse.

    Args:
        *layers: Modules, or (name, Module) pairs. Unnamed layers are named by kind and
            position among their kind: conv1, bn1, relu1, pool1, conv2, ..., fc1.
        name: the model's name, shown by `summary`.
        input_shape: one sample's shape, e.g. (1, 28, 28); lets `summary()` run without data.

    Attributes:
        fused: in training, run each BatchNorm2D → MaxPool2D (→ ReLU) as one step, pooling
            before normalising (see fusion.py): the same outputs, gradients equal up to
            rounding, less memory traffic. False runs every layer on its own.

    Parameters are named `<layer>.<parameter>`, e.g. `conv1.weight`.
    """

    prefix = "block"

    def __init__(self, *layers, name: str = "sequential", input_shape: Iterable[int] | None = None) -> None:
        super().__init__()
        self.name = name
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.layer_names: list[str] = []
        self.criterion = SoftmaxCrossEntropy()
        self.fused = True
        self._steps = None
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
        """Batch-first in, batch-first out. The input is copied once into batch-last order so
        that every layer reads contiguous memory: im2col on the strided view of an NCHW batch
        took 4.4 of the relu model's 10.4 s per epoch (measured by benchmarks/bench.py)."""
        return to_batch_first(self._forward(np.ascontiguousarray(to_batch_last(as_float(x)))))

    def _forward(self, x):
        # Kept for the backward pass, which must run the same steps in reverse.
        self._steps = training_steps(self.layers) if self.fused else self.layers
        for step in self._steps:
            x = step._forward(x)
        return x

    def _backward(self, dout):
        for step in reversed(self._steps):
            dout = step._backward(dout)
        return dout

    def backward(self, dout=None, input_grad: bool = True):
        """Backpropagate `dout`, or, when omitted, the gradient of the last `loss` call.

        With `input_grad=False` only parameter gradients are computed and None is returned,
        which spares the first layer's input gradient (a training step never uses it).
        """
        if self._steps is None:
            raise RuntimeError(f"{self.name}: backward() needs a forward() first")
        dout = to_batch_last(np.asarray(self.criterion.backward() if dout is None else dout))
        steps = self._steps
        for step in reversed(steps[1:]):
            dout = step._backward(dout)
        if not input_grad:
            steps[0]._backward_parameters(dout)
            return None
        return to_batch_first(steps[0]._backward(dout))

    def output_shape(self, input_shape):
        for layer in self.layers:
            input_shape = layer.output_shape(input_shape)
        return input_shape

    # -- the classic from-scratch loop ---------------------------------------------------
    def loss(self, logits, labels) -> float:
        """Softmax cross-entropy of `logits`; `backward()` then uses its gradient."""
        return self.criterion(logits, labels)

    def update(self, learning_rate: float) -> None:
        """Plain SGD on every parameter, then clear the gradients."""
        for parameter in self.parameters():
            parameter.value -= learning_rate * parameter.grad
            parameter.zero_grad()

    def predict_proba(self, x, batch_size: int = 64) -> np.ndarray:
        """Class probabilities (N, K) of the eval-mode model (the model's mode is unchanged)."""
        logits = self.predict_logits(x, batch_size)
        exps = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exps / exps.sum(axis=1, keepdims=True)

    def predict_logits(self, x, batch_size: int = 64) -> np.ndarray:
        """Logits (N, K) of the eval-mode model, through its folded inference plan.

        The default batch of 64 keeps the arrays passed between layers close to the CPU's
        caches (C1's output is 1.2 MB at 64); `benchmarks/bench.py` times batches of 64,
        256 and 1000 and reports the fastest.
        """
        # The plan runs the model's own layers where it cannot fold them (a BatchNorm after a
        # ReLU, anything in a nested model), so the whole tree is put in eval mode for it, and
        # each module's own mode is put back after: training may go on right after evaluation.
        modes = [(module, module.training) for module in _modules(self)]
        self.eval()
        try:
            plan = inference_layers(self.layers)
            chunks = []
            for start in range(0, len(x), batch_size):
                h = np.ascontiguousarray(to_batch_last(as_float(x[start : start + batch_size])))
                for layer in plan:
                    h = layer._forward(h)
                chunks.append(np.array(to_batch_first(h)))
        finally:
            for module, mode in modes:
                module.training = mode
        return np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)

    def predict(self, x, batch_size: int = 64) -> np.ndarray:
        """The most probable class of each sample, (N,) int64."""
        return self.predict_logits(x, batch_size).argmax(axis=1).astype(np.int64)

    def accuracy(self, x, labels, batch_size: int = 64) -> float:
        """The fraction of samples whose predicted class equals the label (one-hot accepted)."""
        labels = np.asarray(labels)
        if labels.ndim == 2:
            labels = labels.argmax(axis=1)
        return float((self.predict(x, batch_size) == labels).mean())

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


def _modules(module: Module):
    yield module
    for _, child in module.named_children():
        yield from _modules(child)


def _generators(module: Module) -> list[np.random.Generator]:
    """The random generators of `module` and everything inside it (Dropout's), in tree order."""
    return [m.rng for m in _modules(module) if isinstance(getattr(m, "rng", None), np.random.Generator)]


def _bytes(count: int) -> str:
    for unit in ("B", "KB", "MB"):
        if count < 1024 or unit == "MB":
            return f"{count:.2f} {unit}"
        count /= 1024
    return f"{count:.2f} MB"
