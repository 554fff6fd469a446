"""Turn a person's photo or drawing of a digit into an MNIST-like 28×28 image.

MNIST was made by size-normalising each digit into a 20×20 box (keeping its aspect ratio)
and centring it by its centre of mass in a 28×28 field, white ink on black. A digit written
by hand on paper is the opposite (dark ink, light background), so it is inverted first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import Lenet5Error

MAX_PIXELS = 40_000_000  # checked from the header, before any pixel is decoded
MAX_FILE_BYTES = 64 * 1024 * 1024


class ImageError(Lenet5Error):
    """An image that cannot be read or holds no digit."""


def load_digit(path: str | Path) -> np.ndarray:
    """The 28×28 uint8 MNIST-style image of the digit in `path` (PNG, JPEG, GIF, BMP...)."""
    try:
        from PIL import Image, ImageSequence, UnidentifiedImageError
    except ModuleNotFoundError:
        raise ImageError("reading images needs Pillow: pip install 'lenet5[image]'") from None
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ImageError(f"{path}: file of {path.stat().st_size:,} bytes is larger than {MAX_FILE_BYTES:,}")
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_PIXELS or width < 1 or height < 1:
                raise ImageError(f"{path}: {width}x{height} pixels is outside 1..{MAX_PIXELS:,} pixels")
            first_frame = next(iter(ImageSequence.Iterator(image)))  # animated: the first frame
            grey = _to_grey(first_frame)
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ImageError(f"{path}: cannot read image ({type(error).__name__}: {error})") from None
    return mnist_like(grey, str(path))


def _to_grey(image) -> np.ndarray:
    """Float greyscale in [0, 1]; transparency is composited onto white paper."""
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all():  # a float image may hold inf or NaN: no grey level
            raise ValueError("pixel values must be finite, found inf or NaN")
        low, high = values.min(), values.max()
        return (values - low) / (high - low) if high > low else np.zeros_like(values)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, rgba)
    return np.asarray(image.convert("L"), dtype=np.float64) / 255.0


def mnist_like(grey: np.ndarray, name: str = "image") -> np.ndarray:
    """Invert if the background is light, crop to the ink, fit into 20×20, centre by mass."""
    from PIL import Image

    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    ink = 1.0 - grey if np.median(border) > 0.5 else grey.copy()
    ink -= np.median(np.concatenate([ink[0], ink[-1], ink[:, 0], ink[:, -1]]))
    ink = np.clip(ink, 0, None)
    peak = ink.max()
    if peak < 0.1:
        raise ImageError(f"{name}: no digit found (the image is blank or has too little contrast)")
    ink /= peak
    rows, cols = np.nonzero(ink > 0.2)
    ink = ink[rows.min(): rows.max() + 1, cols.min(): cols.max() + 1]
    height, width = ink.shape
    scale = 20.0 / max(height, width)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    fitted = Image.fromarray((ink * 255).astype(np.uint8)).resize(new_size, Image.Resampling.LANCZOS)
    box = np.asarray(fitted, dtype=np.float64)
    field = np.zeros((28, 28))
    top, left = (28 - box.shape[0]) // 2, (28 - box.shape[1]) // 2
    field[top: top + box.shape[0], left: left + box.shape[1]] = box
    total = field.sum()
    ys, xs = np.indices(field.shape)
    shift_y = int(round(13.5 - (ys * field).sum() / total))
    shift_x = int(round(13.5 - (xs * field).sum() / total))
    field = _shift(field, shift_y, shift_x)
    return np.clip(field, 0, 255).astype(np.uint8)


def _shift(array: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate without wrapping around; what moves out is dropped, what moves in is 0."""
    out = np.zeros_like(array)
    h, w = array.shape
    src_y, dst_y = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    src_x, dst_x = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[dst_y, dst_x] = array[src_y, src_x]
    return out
