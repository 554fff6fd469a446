"""Dropout, fast: masks drawn in the reference's batch-first order, so both engines drop the
same units from the same generator state, then used batch-last."""

from __future__ import annotations

import numpy as np

from .layout import to_batch_last
from .step import Step


def draw_keep_mask(layer, batch_first_shape) -> np.ndarray:
    """The keep mask the reference `Dropout` draws for an input of that batch-first shape."""
    return layer.draw_keep_mask(batch_first_shape)


class DropoutStep(Step):
    """A `lenet5.nn.Dropout`. `keep_masks(layer, batch_first_shape)` gives the keep mask; by
    default it is drawn here from the layer's generator, and a data-parallel strategy
    passes each process its rows of a mask drawn once for the whole batch."""

    def __init__(self, layer, keep_masks=None) -> None:
        super().__init__(layer)
        self.keep_masks = keep_masks or draw_keep_mask

    def forward(self, x):
        layer = self.layer
        if not layer.training or layer.p == 0:
            self._scale = None
            return x
        keep = to_batch_last(self.keep_masks(layer, (x.shape[-1],) + x.shape[:-1]))
        self._scale = keep.astype(x.dtype) * (1.0 / (1.0 - layer.p))
        return x * self._scale

    def backward(self, dout):
        return dout if self._scale is None else dout * self._scale
