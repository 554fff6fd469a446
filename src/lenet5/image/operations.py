"""Small operations on 2-D arrays of grey levels that finding a digit needs: block means and
maxima, sliding-window filters, a smooth resize, connected blobs and their boxes.

The filters, the resize and the labelling are SciPy's (`scipy.ndimage`, `scipy.sparse.csgraph`):
they are not what this project teaches. Edges are extended (`mode="nearest"`) so that a
window at the border sees the border's own grey, not black.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from scipy.sparse.csgraph import connected_components


def block_max(values: np.ndarray, factor: int) -> np.ndarray:
    """Maxima of factor×factor blocks of a 2-D array of values >= 0."""
    height, width = values.shape
    rows, cols = math.ceil(height / factor), math.ceil(width / factor)
    padded = np.zeros((rows * factor, cols * factor))
    padded[:height, :width] = values
    return padded.reshape(rows, factor, cols, factor).max(axis=(1, 3))


def block_mean(values: np.ndarray, factor: int) -> np.ndarray:
    """Means of factor×factor blocks (partial blocks at the edges averaged over what they hold),
    summed in place of a padded copy: a few rows of a wide image would be padded to `factor`."""
    height, width = values.shape[:2]
    tops, lefts = np.arange(0, height, factor), np.arange(0, width, factor)
    sums = np.add.reduceat(np.add.reduceat(values, tops, axis=0), lefts, axis=1)
    counts = np.outer(np.minimum(factor, height - tops), np.minimum(factor, width - lefts))
    return sums / (counts[..., None] if values.ndim == 3 else counts)


def max_filter(values: np.ndarray, window: int) -> np.ndarray:
    """The largest value in the window×window square (window odd) around each pixel."""
    return ndimage.maximum_filter(values, size=window, mode="nearest")


def min_filter(values: np.ndarray, window: int) -> np.ndarray:
    """The smallest value in the window×window square (window odd) around each pixel."""
    return ndimage.minimum_filter(values, size=window, mode="nearest")


def box_filter(values: np.ndarray, window: int) -> np.ndarray:
    """The mean of the window×window square (window odd) around each pixel."""
    return ndimage.uniform_filter(values, size=window, mode="nearest")


def resize_float(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear interpolation of a smooth map to `shape`, pixel centres aligned (`grid_mode`)."""
    zoom = (shape[0] / values.shape[0], shape[1] / values.shape[1])
    return ndimage.zoom(values, zoom, output=np.float64, order=1, mode="nearest", grid_mode=True)


EIGHT_CONNECTED = np.ones((3, 3), bool)


def label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of `mask`: (labels, 1..count; 0 for background)."""
    labels, count = ndimage.label(mask, structure=EIGHT_CONNECTED)
    return labels, int(count)


def label_boxes(labels: np.ndarray, count: int) -> list[tuple[int, int, int, int]]:
    """(top, bottom, left, right), bottom and right exclusive, of each label 1..count."""
    return [(rows.start, rows.stop, columns.start, columns.stop)
            for rows, columns in ndimage.find_objects(labels, count)]


def overlapping_groups(boxes: list[tuple[int, int, int, int]], margin: int) -> list[list[int]]:
    """Indices of `boxes` grouped where boxes grown by `margin` overlap (transitively), each
    group in index order and the groups in the order of their first box."""
    top, bottom, left, right = (np.array(side)[:, None] for side in zip(*boxes))
    overlap = ((top - margin < bottom.T + margin) & (top.T - margin < bottom + margin)
               & (left - margin < right.T + margin) & (left.T - margin < right + margin))
    _, group_of = connected_components(overlap, directed=False)
    groups: dict[int, list[int]] = {}
    for index, group in enumerate(group_of.tolist()):
        groups.setdefault(group, []).append(index)
    return list(groups.values())


def shift(array: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate by whole pixels without wrapping around: what moves in is 0."""
    return ndimage.shift(array, (dy, dx), order=0, mode="constant", cval=0.0)
