"""Dropout, fast: masks drawn in the reference's batch-first order, so both engines drop the
same units from the same generator state, then used batch-last."""

from __future__ import annotations

from .layout import to_batch_last
from .step import Step


class DropoutStep(Step):
    """A `lenet5.nn.Dropout`, its keep mask drawn from the layer's generator as the reference draws it."""

    def forward(self, x):
        layer = self.layer
        if not layer.training or layer.p == 0:
            self._scale = None
            return x
        keep = to_batch_last(layer.draw_keep_mask((x.shape[-1],) + x.shape[:-1]))
        self._scale = keep.astype(x.dtype) * (1.0 / (1.0 - layer.p))
        return x * self._scale

    def backward(self, dout):
        return dout if self._scale is None else dout * self._scale
