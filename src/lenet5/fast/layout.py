"""The fast engine computes batch-last: (C, H, W, N) and (F, N); its callers pass batch-first arrays.

Why batch-last inside: with the batch as the innermost, contiguous axis, im2col copies long
contiguous runs instead of 1- or 6-element channel runs, a convolution is one matrix product
`weight (F, C·KH·KW) @ columns (C·KH·KW, OH·OW·N)` whose result already is the next layer's
input (F, OH, OW, N), and a dense layer is `weight @ x` with no transposed copies.
Converting between the two layouts is a transposed view, never a copy.
"""

from __future__ import annotations

import numpy as np


def to_batch_last(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (C, H, W, N) and (N, F) -> (F, N), as views; likewise (N, ...) -> (..., N).

    Any rank passes, so that a layer given the wrong one says so itself, naming the layer
    and the shape it expected (see `checks.check_input`).
    """
    return x.transpose(tuple(range(1, x.ndim)) + (0,)) if x.ndim else x


def to_batch_first(x: np.ndarray) -> np.ndarray:
    """(C, H, W, N) -> (N, C, H, W) and (F, N) -> (N, F), as views; likewise (..., N) -> (N, ...)."""
    return x.transpose((x.ndim - 1,) + tuple(range(x.ndim - 1))) if x.ndim else x


def public_shape(batch_last_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The batch-first shape a user passed, for error messages."""
    return (batch_last_shape[-1],) + tuple(batch_last_shape[:-1])
