"""Training-time distortions of digit images: LeCun's shifts and planar affine maps, and
Simard's elastic deformations, each drawn per image and applied to a whole batch at once.

    x = distort(x, "affine", 1.0, rng, fill=background)   # (N, C, H, W) -> (N, C, H, W)

    distortion = Distortion.draw("affine", 1.0, rng, fill=background)   # what the trainer does:
    logits = engine.forward(x, distortion=distortion)                    # the engine applies it

A distortion is a map from each output pixel to the point of the input it shows; the input is
read there by bilinear interpolation, and whatever falls outside the image reads `fill`, the
preprocessed background. A batch's distortions are four numbers (`Distortion`: kind,
strength, fill, and a seed drawn from `rng`); each block of 32 rows draws its images'
parameters from a generator seeded by (seed, block). So a batch's distortions depend on the
trainer's generator alone (it is checkpointed, and a resumed run distorts the same images the
same way).

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
from dataclasses import dataclass

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

    Shape: (N, C, H, W) -> (N, C, H, W).
    """
    if max_shift <= 0:
        return images
    return shift_images(images, max_shift, rng.integers(0, 2 * max_shift + 1, (2, len(images))), fill)


def shift_images(images: np.ndarray, max_shift: int, offsets: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """Image n's output pixel (i, j) shows its input (i + dy − s, j + dx − s), where
    (dy, dx) = offsets[:, n] in [0, 2s] and s = max_shift; outside the input reads `fill`.

    Shape: (N, C, H, W) -> (N, C, H, W). One gather over a strided view, no loop over images.
    """
    count, channels, height, width = images.shape
    padded = np.full((count, channels, height + 2 * max_shift, width + 2 * max_shift), fill, images.dtype)
    padded[:, :, max_shift: max_shift + height, max_shift: max_shift + width] = images
    windows = sliding_window_view(padded, (height, width), axis=(2, 3))  # (N, C, 2s+1, 2s+1, H, W)
    return windows[np.arange(count), :, offsets[0], offsets[1]]


def bilinear_sample(images: np.ndarray, rows: np.ndarray, cols: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """Image n read at the point (rows[n, i, j], cols[n, i, j]) for each output pixel (i, j),
    interpolating its four neighbours; neighbours outside the image read `fill`.

    Shape: images (N, C, H, W), rows and cols (N, H', W') -> (N, C, H', W').
    """
    count, channels, height, width = images.shape
    points = rows.shape
    # A frame of `fill` (one pixel before, two after) and points clipped to [−1, H] × [−1, W]:
    # a point beyond the image then has only fill around it, as it would unclipped, and every
    # point's four neighbours are the same four offsets from its top-left one. Few passes,
    # in place where they can be: this runs on every training batch.
    padded = np.full((count, channels, height + 3, width + 3), fill, images.dtype)
    padded[:, :, 1: height + 1, 1: width + 1] = images
    stride, plane = width + 3, (height + 3) * (width + 3)
    down = np.clip(rows.reshape(count, -1), -1, height, dtype=np.float32)
    right = np.clip(cols.reshape(count, -1), -1, width, dtype=np.float32)
    top, left = np.floor(down), np.floor(right)
    down -= top  # the fractions: the weights of the lower and right neighbours
    right -= left
    # The top-left neighbour's index in the flat padded batch (the frame's pixel before the
    # image included); float32 holds it exactly below 2²⁴.
    index_type = np.float32 if count * channels * plane < 2**24 else np.float64
    top = top.astype(index_type, copy=False)
    top *= stride
    top += left
    top += (np.arange(count, dtype=index_type) * (channels * plane) + stride + 1)[:, None]
    corner = top.astype(np.intp)
    if channels > 1:
        corner = corner[:, None, :] + (np.arange(channels) * plane)[None, :, None]  # (N, C, H'·W')
    else:
        corner = corner[:, None, :]
    down, right = down[:, None, :], right[:, None, :]
    flat = padded.reshape(-1)
    upper = flat.take(corner)
    upper += (flat.take(corner + 1) - upper) * right
    corner += stride
    lower = flat.take(corner)
    lower += (flat.take(corner + 1) - lower) * right
    upper += (lower - upper) * down
    return upper.reshape(count, channels, *points[1:]).astype(images.dtype, copy=False)


def affine_sample_points(matrices: np.ndarray, translations: np.ndarray, shape: tuple[int, int]):
    """Where each output pixel reads the input, for images moved by `matrices` about their
    centre, then by `translations`: output = centre + A·(input − centre) + t, inverted.

    Shape: matrices (N, 2, 2) and translations (N, 2), both in (row, column) order ->
    rows, cols (N, H, W), float32.
    """
    height, width = shape
    centre_row, centre_col = (height - 1) / 2, (width - 1) / 2
    # The 2×2 inverse written out ([[d, −b], [−c, a]] / det): np.linalg.inv's checks cost more.
    (a, b), (c, d) = matrices.transpose(1, 2, 0)
    inverse = (np.array([[d, -b], [-c, a]]) / (a * d - b * c)).astype(np.float32).transpose(2, 0, 1)
    inverse = inverse[:, :, :, None, None]  # (N, 2, 2, 1, 1)
    translations = translations.astype(np.float32)
    row = (np.arange(height, dtype=np.float32) - centre_row)[None, :, None] - translations[:, 0, None, None]
    col = (np.arange(width, dtype=np.float32) - centre_col)[None, None, :] - translations[:, 1, None, None]
    rows = inverse[:, 0, 1] * col + np.float32(centre_row)  # (N, 1, W) + (N, H, 1) below
    rows = rows + inverse[:, 0, 0] * row
    cols = inverse[:, 1, 1] * col + np.float32(centre_col)
    cols = cols + inverse[:, 1, 0] * row
    return rows, cols


def random_affine(count: int, rng: np.random.Generator, strength: float = 1.0):
    """`count` random planar affine maps: rotation, scale, squeeze, horizontal shear and
    translation, each uniform in its range times `strength` (the table above).

    Returns matrices (N, 2, 2) and translations (N, 2), for `affine_sample_points`.
    """
    angle, scale, squeeze, shear, dy, dx = (rng.uniform(-strength, strength, (6, count))
                                            * np.array([[math.radians(ROTATION_DEGREES)], [SCALE], [SQUEEZE],
                                                        [SHEAR], [TRANSLATION], [TRANSLATION]]))
    cos, sin = np.cos(angle), np.sin(angle)
    tall, wide = (1 + scale) * (1 + squeeze), (1 + scale) / (1 + squeeze)
    # rotation [[cos, −sin], [sin, cos]] @ shear [[1, 0], [shear, 1]] @ sizing diag(tall, wide),
    # multiplied out: a batch of 2×2 products costs more in calls than in arithmetic.
    matrices = np.empty((count, 2, 2))
    matrices[:, 0, 0] = (cos - sin * shear) * tall
    matrices[:, 0, 1] = -sin * wide
    matrices[:, 1, 0] = (sin + cos * shear) * tall
    matrices[:, 1, 1] = cos * wide
    return matrices, np.stack([dy, dx], 1)


def gaussian_matrix(size: int, sigma: float) -> np.ndarray:
    """G with G @ v the convolution of v with a normalised Gaussian of width `sigma`, zero
    beyond the ends (as Simard's field is zero outside the image)."""
    offsets = np.arange(-(size - 1), size)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    index = np.arange(size)
    return kernel[index[:, None] - index[None, :] + size - 1].astype(np.float32)


def elastic_field(count: int, shape: tuple[int, int], rng: np.random.Generator, alpha: float = ELASTIC_ALPHA,
                  sigma: float = ELASTIC_SIGMA, rows: slice = slice(None)) -> np.ndarray:
    """Simard et al. 2003's displacements: uniform in [−1, 1] at every pixel, smoothed by a
    Gaussian of width `sigma` (separably, by a matrix on each side), times `alpha`. `rows`:
    which of the `count` images drawn to smooth and return.

    Shape: -> (n, 2, H, W), the (row, column) displacement of each output pixel's sample point.
    """
    height, width = shape
    noise = rng.random((count, 2, height, width), dtype=np.float32)[rows]
    noise *= 2
    noise -= 1
    across = (noise.reshape(-1, width) @ (alpha * gaussian_matrix(width, sigma)).T).reshape(noise.shape)
    return gaussian_matrix(height, sigma) @ across


def distort(images: np.ndarray, kind: str, strength: float, rng: np.random.Generator, fill: float = 0.0) -> np.ndarray:
    """`images` distorted by `kind` (one of KINDS) at `strength`: `Distortion.draw` then
    `apply`, in one call.

    Shape: (N, C, H, W) -> (N, C, H, W); the input itself when nothing would change it.
    """
    distortion = Distortion.draw(kind, strength, rng, fill)
    return images if distortion is None else distortion.apply(images)


@dataclass(frozen=True)
class Distortion:
    """One batch's distortions, as four numbers: every image's parameters come from `seed`.

    The trainer draws one per batch from its generator (`draw`) and hands it to the engine
    with the undistorted batch, which `apply` distorts. Each block of BLOCK rows of the batch
    draws its images' parameters from its own generator, seeded by (seed, block).
    """

    kind: str
    strength: float
    fill: float
    seed: int

    # Rows distorted together: a block's intermediate arrays (sample points, indices,
    # neighbours, each a few passes) stay in a core's cache; a whole batch of 128 did not,
    # and distorting it took twice as long (measured on the 2-core machine).
    BLOCK = 32

    @classmethod
    def draw(cls, kind: str, strength: float, rng: np.random.Generator, fill: float = 0.0) -> "Distortion | None":
        """The next batch's distortion, one integer drawn from `rng`; None (and nothing drawn)
        for "none" or strength 0."""
        if kind not in KINDS:
            raise ValueError(f"unknown distortion {kind!r}; known: {', '.join(KINDS)}")
        if kind == "none" or strength <= 0:
            return None
        return cls(kind, float(strength), float(fill), int(rng.integers(2**63)))

    def apply(self, images: np.ndarray) -> np.ndarray:
        """The batch, distorted.

        Shape: (N, C, H, W) -> (N, C, H, W).
        """
        if self.kind == "shift" and round(SHIFT_PIXELS * self.strength) <= 0:
            return images
        out = np.empty_like(images)
        for block, first in enumerate(range(0, len(images), self.BLOCK)):
            rows = slice(first, first + self.BLOCK)
            out[rows] = self._distort_block(images[rows], np.random.default_rng([self.seed, block]))
        return out

    def _distort_block(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A block's images (BLOCK, or fewer in a batch's last block), distorted.

        `rng` draws the parameters of a whole BLOCK even for a shorter last block, whose
        images take the first of them: the draws, and so every run's distortions, stay those
        that runs made before, and a resumed run distorts as its first part did.
        """
        mine = slice(0, len(images))
        if self.kind == "shift":
            pixels = round(SHIFT_PIXELS * self.strength)
            return shift_images(images, pixels, rng.integers(0, 2 * pixels + 1, (2, self.BLOCK))[:, mine], self.fill)
        matrices, translations = random_affine(self.BLOCK, rng, self.strength)
        height, width = images.shape[2:]
        down, across = affine_sample_points(matrices[mine], translations[mine], (height, width))
        if self.kind == "elastic":
            field = elastic_field(self.BLOCK, (height, width), rng, ELASTIC_ALPHA * self.strength, rows=mine)
            down += field[:, 0]
            across += field[:, 1]
        return bilinear_sample(images, down, across, self.fill)
