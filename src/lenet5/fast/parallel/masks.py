"""Dropout's keep masks in a split batch: drawn once by rank 0, shipped to every rank.

One process would draw each Dropout layer's mask for the whole batch from the layer's
generator. Rank 0 draws exactly that (`draw_keep_mask` on the whole batch's shape), so the
model's generators advance as one process's would, and writes the masks into shared
memory; each rank's FastModel then takes its own rows through `DropoutMasks.rows`. No
generator state ever crosses processes.
"""

from __future__ import annotations

import numpy as np

from ..dropout import draw_keep_mask


def mask_bytes(dropout_layers, total: int) -> int:
    """Bytes the masks of `dropout_layers` [(layer, sample shape)] take for `total` rows."""
    return total * sum(int(np.prod(shape, dtype=np.int64)) for _, shape in dropout_layers)


class DropoutMasks:
    """The shared masks of the current training forward, and this rank's rows of them.

    Args:
        area: the shared uint8 area the masks are laid out in, one layer after another.
    """

    def __init__(self, area: np.ndarray) -> None:
        self.area = area
        self._masks = {}  # id(layer) -> the whole batch's mask, a view of `area`
        self._rows = slice(0, 0)

    def draw(self, dropout_layers, total: int) -> None:
        """Rank 0: draw each layer's mask for the whole batch and store it."""
        for layer, mask in self._locate(dropout_layers, total):
            np.copyto(mask, draw_keep_mask(layer, mask.shape))

    def use(self, dropout_layers, total: int, rows: tuple[int, int]) -> None:
        """Every rank: the masks of this forward are those of `dropout_layers`, rows [start, stop)."""
        self._masks = {id(layer): mask for layer, mask in self._locate(dropout_layers, total)}
        self._rows = slice(*rows)

    def _locate(self, dropout_layers, total: int) -> list:
        """[(layer, its whole-batch mask as a view of the area)], one layer after another."""
        needed = mask_bytes(dropout_layers, total)
        if needed > self.area.size:
            raise ValueError(f"DataParallel: the Dropout masks need {needed} bytes, the shared area holds {self.area.size}")
        views, offset = [], 0
        for layer, shape in dropout_layers:
            size = total * int(np.prod(shape, dtype=np.int64))
            views.append((layer, self.area[offset : offset + size].view(np.bool_).reshape((total,) + tuple(shape))))
            offset += size
        return views

    def rows(self, layer, batch_first_shape) -> np.ndarray:
        """The `dropout_masks` callable of a FastModel: this rank's rows of `layer`'s mask."""
        mask = self._masks.get(id(layer))
        if mask is None:
            raise RuntimeError(f"DataParallel: no mask was drawn for {layer!r}")
        rows = mask[self._rows]
        if rows.shape != tuple(batch_first_shape):
            raise RuntimeError(f"DataParallel: {layer!r} asks for a mask of shape {tuple(batch_first_shape)}, "
                               f"its share is {rows.shape}")
        return rows.copy()
