"""Training-time distortions of digit images: LeCun's shifts and planar affine maps, and
Simard's elastic deformations, each drawn per image and applied to a whole batch at once.

    x = distort(x, "affine", 1.0, rng, fill=background)   # (N, C, H, W) -> (N, C, H, W)

A distortion is a map from each output pixel to the point of the input it shows; the input is
read there by bilinear interpolation, and whatever falls outside the image reads `fill`, the
preprocessed background. Every random number comes from `rng`, in one draw per kind of
parameter, so a batch's distortions depend on the generator's state alone (the trainer
checkpoints it, and a resumed run distorts the same images the same way).

    kind      strength 1 means                                    after
    shift     integer translations of up to ±2 pixels              LeCun et al. 1998
    affine    rotation ±10°, scale ±10%, squeeze ±10%,             LeCun et al. 1998's planar
              horizontal shear ±0.2, translation ±2 pixels          maps, plus rotation
    elastic   the affine map plus a random displacement field       Simard et al. 2003
              smoothed by a Gaussian (σ 4 pixels), scaled by α 34

`strength` scales every range (0: the images unchanged); shift's pixels are rounded.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

KINDS = ("none", "shift", "affine", "elastic")
MAX_STRENGTH = 4.0  # 8 pixels of shift: beyond it a 28×28 digit leaves its frame

SHIFT_PIXELS = 2
ROTATION_DEGREES = 10.0
SCALE = 0.1  # size × (1 ± SCALE)
SQUEEZE = 0.1  # height × (1 ± SQUEEZE), width ÷ the same: thinner and taller, or the reverse
SHEAR = 0.2  # column += SHEAR · (row − centre)
TRANSLATION = 2.0  # pixels, continuous
ELASTIC_ALPHA = 34.0  # Simard et al. 2003's values for 29×29 digits
ELASTIC_SIGMA = 4.0


def random_shift(images: np.ndarray, max_shift: int, rng: np.random.Generator, fill: float = 0.0) -> np.ndarray:
    """Each image moved by its own random (dy, dx) in [−max_shift, max_shift], the uncovered
    border filled with `fill` (the preprocessed background value).

    Shape: (N, C, H, W) -> (N, C, H, W). One gather over a strided view, no loop over images.
    """
    if max_shift <= 0:
        return images
    count, channels, height, width = images.shape
    padded = np.full((count, channels, height + 2 * max_shift, width + 2 * max_shift), fill, images.dtype)
    padded[:, :, max_shift: max_shift + height, max_shift: max_shift + width] = images
    windows = sliding_window_view(padded, (height, width), axis=(2, 3))  # (N, C, 2s+1, 2s+1, H, W)
    dy = rng.integers(0, 2 * max_shift + 1, count)
    dx = rng.integers(0, 2 * max_shift + 1, count)
    return windows[np.arange(count), :, dy, dx]


def bilinear_sample(images: np.ndarray, rows: np.ndarray, cols: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """Image n read at the point (rows[n, i, j], cols[n, i, j]) for each output pixel (i, j),
    interpolating its four neighbours; neighbours outside the image read `fill`.

    Shape: images (N, C, H, W), rows and cols (N, H', W') -> (N, C, H', W').
    """
    count, channels, height, width = images.shape
    points = rows.shape
    # A frame of `fill` (one pixel before, two after) and points clipped to [−1, H] × [−1, W]:
    # a point beyond the image then has only fill around it, as it would unclipped, and every
    # point's four neighbours are the same four offsets from its top-left one. In place where
    # it can be: this runs on every training batch.
    padded = np.full((count, channels, height + 3, width + 3), fill, images.dtype)
    padded[:, :, 1: height + 1, 1: width + 1] = images
    stride, plane = width + 3, (height + 3) * (width + 3)
    down = np.clip(rows.reshape(count, 1, -1), -1, height, dtype=np.float32)
    right = np.clip(cols.reshape(count, 1, -1), -1, width, dtype=np.float32)
    top, left = np.floor(down), np.floor(right)
    down -= top  # the fractions: the weights of the lower and right neighbours
    right -= left
    corner = ((top + 1) * stride + left + 1).astype(np.intp)  # exact: small integers in float32
    corner = corner + (np.arange(count * channels) * plane).reshape(count, channels, 1)  # (N, C, H·W)
    flat = padded.reshape(-1)
    upper = flat[corner]
    upper += (flat[corner + 1] - upper) * right
    corner += stride
    lower = flat[corner]
    lower += (flat[corner + 1] - lower) * right
    upper += (lower - upper) * down
    return upper.reshape(count, channels, *points[1:]).astype(images.dtype, copy=False)


def affine_sample_points(matrices: np.ndarray, translations: np.ndarray, shape: tuple[int, int]):
    """Where each output pixel reads the input, for images moved by `matrices` about their
    centre, then by `translations`: output = centre + A·(input − centre) + t, inverted.

    Shape: matrices (N, 2, 2) and translations (N, 2), both in (row, column) order ->
    rows, cols (N, H, W).
    """
    height, width = shape
    centre_row, centre_col = (height - 1) / 2, (width - 1) / 2
    inverse = np.linalg.inv(matrices)[:, :, :, None, None]  # (N, 2, 2, 1, 1)
    row = (np.arange(height) - centre_row)[None, :, None] - translations[:, 0, None, None]  # (N, H, 1)
    col = (np.arange(width) - centre_col)[None, None, :] - translations[:, 1, None, None]  # (N, 1, W)
    return (centre_row + inverse[:, 0, 0] * row + inverse[:, 0, 1] * col,
            centre_col + inverse[:, 1, 0] * row + inverse[:, 1, 1] * col)


def random_affine(count: int, rng: np.random.Generator, strength: float = 1.0):
    """`count` random planar affine maps: rotation, scale, squeeze, horizontal shear and
    translation, each uniform in its range times `strength` (the table above).

    Returns matrices (N, 2, 2) and translations (N, 2), for `affine_sample_points`.
    """
    angle, scale, squeeze, shear, dy, dx = (rng.uniform(-strength, strength, (6, count))
                                            * np.array([[math.radians(ROTATION_DEGREES)], [SCALE], [SQUEEZE],
                                                        [SHEAR], [TRANSLATION], [TRANSLATION]]))
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], 1)
    shearing = np.zeros((count, 2, 2))
    shearing[:, 0, 0] = shearing[:, 1, 1] = 1
    shearing[:, 1, 0] = shear
    sizing = np.zeros((count, 2, 2))
    sizing[:, 0, 0] = (1 + scale) * (1 + squeeze)
    sizing[:, 1, 1] = (1 + scale) / (1 + squeeze)
    return rotation @ shearing @ sizing, np.stack([dy, dx], 1)


def gaussian_matrix(size: int, sigma: float) -> np.ndarray:
    """G with G @ v the convolution of v with a normalised Gaussian of width `sigma`, zero
    beyond the ends (as Simard's field is zero outside the image)."""
    offsets = np.arange(-(size - 1), size)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    index = np.arange(size)
    return kernel[index[:, None] - index[None, :] + size - 1].astype(np.float32)


def elastic_field(count: int, shape: tuple[int, int], rng: np.random.Generator, alpha: float = ELASTIC_ALPHA,
                  sigma: float = ELASTIC_SIGMA) -> np.ndarray:
    """Simard et al. 2003's displacements: uniform in [−1, 1] at every pixel, smoothed by a
    Gaussian of width `sigma` (separably, as two matrix products per image), times `alpha`.

    Shape: -> (N, 2, H, W), the (row, column) displacement of each output pixel's sample point.
    """
    height, width = shape
    noise = 2 * rng.random((count, 2, height, width), dtype=np.float32) - 1
    # 2N small products, not two large ones: a large one goes to BLAS's threads, which on a
    # busy machine (or beside the data-parallel workers) waited ten times longer (measured).
    return alpha * (gaussian_matrix(height, sigma) @ noise @ gaussian_matrix(width, sigma).T)


def distort(images: np.ndarray, kind: str, strength: float, rng: np.random.Generator, fill: float = 0.0) -> np.ndarray:
    """The trainer's one call: `images` distorted by `kind` (one of KINDS) at `strength`.

    Shape: (N, C, H, W) -> (N, C, H, W); the input itself when nothing would change it.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown distortion {kind!r}; known: {', '.join(KINDS)}")
    if kind == "none" or strength <= 0:
        return images
    if kind == "shift":
        return random_shift(images, round(SHIFT_PIXELS * strength), rng, fill)
    count, _, height, width = images.shape
    rows, cols = affine_sample_points(*random_affine(count, rng, strength), (height, width))
    if kind == "elastic":
        field = elastic_field(count, (height, width), rng, ELASTIC_ALPHA * strength)
        rows, cols = rows + field[:, 0], cols + field[:, 1]
    return bilinear_sample(images, rows, cols, fill)
