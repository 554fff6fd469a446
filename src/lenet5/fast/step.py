"""The base of the fast engine's steps: one reference layer, run on batch-last arrays."""

from __future__ import annotations

import numpy as np

from ..nn.module import Module
from .layout import to_batch_first, to_batch_last


class Step:
    """Runs `layer` (a reference `lenet5.nn` module, whose parameters it uses and whose
    gradients it fills) on batch-last arrays: (C, H, W, N) for maps, (F, N) for features.

    The train/eval mode is the layer's own. `backward_parameters` fills the parameter
    gradients without the input gradient, where that saves work (the first layer's input
    gradient is never used in training).
    """

    def __init__(self, layer: Module) -> None:
        self.layer = layer

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward_parameters(self, dout: np.ndarray) -> None:
        self.backward(dout)

    def output_shape(self, input_shape):
        return self.layer.output_shape(input_shape)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.layer!r})"


class FusedSteps(Step):
    """Several steps (`steps`, in order) run as one: its output shape is theirs in turn, and its
    repr names them."""

    steps: list

    def output_shape(self, input_shape):
        for step in self.steps:
            input_shape = step.output_shape(input_shape)
        return input_shape

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(repr(step.layer) for step in self.steps)})"


class ReferenceStep(Step):
    """Any other layer: its own batch-first forward and backward, between two transposes.
    Correct for every layer, fast for none; the steps in this package replace it for the
    layers of the model zoo."""

    def forward(self, x):
        return to_batch_last(self.layer.forward(to_batch_first(x)))

    def backward(self, dout):
        return to_batch_last(self.layer.backward(to_batch_first(dout)))


def check_input(step: Step, x: np.ndarray, ndim: int, expected: str, channels: int | None = None) -> None:
    """The reference layers' shape check, on a batch-last `x`: the message shows the
    batch-first shape the caller passed."""
    if x.ndim != ndim or (channels is not None and x.shape[0] != channels):
        found = (x.shape[-1],) + x.shape[:-1] if x.ndim else x.shape
        raise ValueError(f"{step.layer!r}: expected input of shape {expected}, found {found}")
