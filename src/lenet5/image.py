"""Turn a person's photo or drawing of a digit into an MNIST-like 28×28 image.

MNIST was made by size-normalising each digit into a 20×20 box (keeping its aspect ratio)
and centring it by its centre of mass in a 28×28 field, white ink on black. A digit written
by hand on paper is the opposite (dark ink, light background), so it is inverted first.

The digit ends up 28×28, so a large picture is never worked on at full size: a JPEG is
decoded at 1/2, 1/4 or 1/8 scale (`Image.draft`), any image is box-reduced to at most
`WORK_SIDE` pixels a side straight after decoding, and what decoding would take is checked
against `DECODE_BUDGET` from the header, before a pixel is decoded.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from .errors import Lenet5Error

MAX_PIXELS = 40_000_000  # checked from the header, before any pixel is decoded
MAX_FILE_BYTES = 64 * 1024 * 1024
DECODE_BUDGET = 128 * 1024 * 1024  # bytes the decoded raster (and its conversion) may take
WORK_SIDE = 1024  # longest side kept after decoding: ample for a digit that becomes 20×20
MAX_MESSAGE = 300  # characters of a decoder's own message quoted in an error

# Modes whose pixels Pillow's box reduction averages correctly, kept as they are. Palette
# indices, bilevel pixels and 16-bit integers are not (the first two cannot be averaged; the
# reducer refuses the third and overflows on large 32-bit integers), so those are converted
# first, at full size, which the budget counts.
_REDUCIBLE = {"L", "LA", "La", "RGB", "RGBA", "RGBa", "CMYK", "YCbCr", "LAB", "HSV", "F"}


class ImageError(Lenet5Error):
    """An image that cannot be read or holds no digit."""


def load_digit(path: str | Path) -> np.ndarray:
    """The 28×28 uint8 MNIST-style image of the digit in `path` (PNG, JPEG, GIF, BMP...).

    Pillow's warnings (a decompression-bomb warning, a palette's transparency) are silenced
    here: the caller reports a problem in one line, and a warning printed before it would
    only bury that line.
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ModuleNotFoundError:
        raise ImageError("reading images needs Pillow: pip install 'lenet5[image]'") from None
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, expected an image file")
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if not path.is_file():  # a FIFO or a device would block or never end
        raise ImageError(f"{path}: is not a regular file, expected an image file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ImageError(f"{path}: file of {size:,} bytes is larger than {MAX_FILE_BYTES:,}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(path) as image:
                grey = _to_grey(_decode_small(image, path))
        except ImageError:
            raise
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, MemoryError,
                Image.DecompressionBombError) as error:
            detail = _one_line(f"{type(error).__name__}: {error}")
            raise ImageError(f"{path}: cannot read image ({detail})") from None
        return mnist_like(grey, str(path))


def _one_line(text: str) -> str:
    """A decoder's message as one short line: some hold newlines, some quote whole buffers."""
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def _decode_small(image, path: Path):
    """The first frame of `image`, decoded and reduced to at most `WORK_SIDE` a side.

    Refuses, before decoding, an image whose decoded raster plus its conversion to a mode
    that can be averaged would take more than `DECODE_BUDGET` bytes.
    """
    width, height = image.size
    if width * height > MAX_PIXELS or width < 1 or height < 1:
        raise ImageError(f"{path}: {width}x{height} pixels is outside 1..{MAX_PIXELS:,} pixels")
    image.seek(0)  # an animated image: its first frame
    if max(width, height) > WORK_SIDE:  # a JPEG then decodes at 1/2, 1/4 or 1/8 scale, in grey
        scale = WORK_SIDE / max(width, height)
        image.draft("L", (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))))
    width, height = image.size
    target = _reducible_mode(image)
    per_pixel = _bytes_per_pixel(image.mode) + (_bytes_per_pixel(target) if target != image.mode else 0)
    needed = width * height * per_pixel
    if needed > DECODE_BUDGET:
        raise ImageError(f"{path}: decoding {width}x{height} {image.mode} pixels needs {needed / 2**20:,.0f} MiB, "
                         f"more than the {DECODE_BUDGET / 2**20:,.0f} MiB allowed; scale the image down")
    image.load()
    if target != image.mode:
        image = image.convert(target)
    if image.mode == "F":
        image = _tame_floats(image)
    factor = math.ceil(max(image.size) / WORK_SIDE)
    return image.reduce(factor) if factor > 1 else image


def _reducible_mode(image) -> str:
    """The mode `image` is converted to before box reduction (its own when it can be averaged)."""
    if image.mode in _REDUCIBLE:
        return image.mode
    if image.mode.startswith("I"):  # I, I;16, I;16B...: integers of any range, as floats
        return "F"
    if image.mode in ("P", "PA") and (image.mode == "PA" or "transparency" in image.info):
        return "RGBA"  # transparency is composited onto white paper after the reduction
    return "L"


def _bytes_per_pixel(mode: str) -> int:
    """What Pillow stores per pixel: bands × bytes per sample, and 4 for any multi-band mode."""
    from PIL import ImageMode

    try:
        descriptor = ImageMode.getmode(mode)
    except KeyError:  # a raw mode Pillow has no descriptor for: assume the widest pixel
        return 4
    per_sample = max(1, int(descriptor.typestr[-1]))
    return max(len(descriptor.bands) * per_sample, 4 if len(descriptor.bands) > 1 else per_sample)


def _tame_floats(image):
    """Scale a float image whose values are so large that averaging 4 of them overflows to inf.

    A finite image must not be refused as holding inf; inf and NaN themselves survive the
    reduction and are refused by `_to_grey`.
    """
    low, high = image.getextrema()
    largest = max(abs(low), abs(high))
    if math.isfinite(largest) and largest > 1e30:
        image = image.point(lambda value: value * (1.0 / largest))
    return image


def _to_grey(image) -> np.ndarray:
    """Float greyscale in [0, 1] of a reduced image; transparency is composited onto white paper.

    A float image (what integer images became) is stretched from its own range: such files
    hold measurements, not grey levels of a known scale.
    """
    from PIL import Image

    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all():  # a float image may hold inf or NaN: no grey level
            raise ValueError("pixel values must be finite, found inf or NaN")
        low, high = values.min(), values.max()
        return (values - low) / (high - low) if high > low else np.zeros_like(values)
    if image.mode in ("RGBA", "LA"):
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
