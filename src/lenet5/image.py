"""Turn a person's photo, scan or drawing of a digit into an MNIST-like 28×28 image.

MNIST was made by size-normalising each digit into a 20×20 box (keeping its aspect ratio)
and centring it by its centre of mass in a 28×28 field, white ink on black, with solid
stroke cores and a pixel of grey at the edges. Real pictures differ in ways a network trained
on MNIST cannot undo, so `prepare_digit` undoes them first, in this order:

1. decode small: a JPEG is decoded at 1/2, 1/4 or 1/8 scale (`Image.draft`) and any image is
   box-reduced to at most `WORK_SIDE` pixels a side straight after decoding, so a 48-megapixel
   photo costs a few MiB; what decoding would take is checked against `DECODE_BUDGET` (bytes)
   from the header, before a pixel is decoded;
2. orientation: a photo stored sideways with an EXIF orientation tag is turned upright;
3. ink: from the colour, or from the alpha channel when the colour does not carry it (white
   or any single colour on a transparent canvas, as drawing pads export);
4. background: paper is estimated at a large scale (a morphological closing, which erases
   strokes but keeps shadows and gradients) and divided out, so a shadow is not ink; the
   lines of ruled paper are removed;
5. contrast: paper noise is cut off and a stroke's core is stretched to full ink, as MNIST's;
6. one digit: ink is grouped into blobs; the largest group is cropped, a fine pen's strokes
   are widened to MNIST's width, and the digit is fitted into 20×20 and centred by mass; the
   verdict says whether that was one clear digit.

docs/image.md shows each step and what it is worth, measured.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import Lenet5Error

MAX_FILE_BYTES = 64 * 1024 * 1024
DECODE_BUDGET = 128 * 1024 * 1024  # bytes a decoded raster and its conversion, or an array's conversion, may take
WORK_SIDE = 1024  # longest side kept after decoding: ample for a digit that becomes 20×20
ANALYSIS_SIDE = 128  # longest side the background and the blobs are worked out at
MAX_MESSAGE = 300  # characters of a decoder's own message quoted in an error

DIGIT_SIDE, BOX_SIDE = 28, 20  # MNIST's field and the box its digits are fitted into
VERDICTS = ("one digit", "empty", "several blobs", "low contrast")
LOW_CONTRAST = 0.15  # a stroke's core this much darker than its paper (a fraction) is faint
NO_CONTRAST = 0.03  # below this nothing is told apart from paper: the page is empty
STANDS_OUT = 8  # noise deviations a stroke's core must stand out by, or the page is empty
RULED = 0.85  # of a row inked: a ruled line, not a stroke (a digit's bar has margins beside it)
CALM_FROM = 150  # pixels a side from which a picture's grain is averaged over 3×3
# A stroke's width over the digit's height: MNIST's is 0.13 (median; 0.10 at the 1st
# percentile, measured on 2,000 test digits). Thinner strokes (a fine pen on a big digit) fade
# to a grey hairline at 20×20, so they are thickened to THICK first.
THIN, THICK = 0.07, 0.12
THICKEN_SIDE = 80  # pixels a side the thickening is worked out at
INK_LEVEL = 0.35  # of a stroke's core: the pixels that make up a blob
SIGNIFICANT = 0.15  # share of all ink above which a separate blob is a second object, not a speck

# Modes whose pixels Pillow's box reduction averages correctly, kept as they are. Palette
# indices, bilevel pixels and 16-bit integers are not (the first two cannot be averaged; the
# reducer refuses the third and overflows on large 32-bit integers), so those are converted
# first, at full size, which the budget counts.
_REDUCIBLE = {"L", "LA", "La", "RGB", "RGBA", "RGBa", "CMYK", "YCbCr", "LAB", "HSV", "F"}


class ImageError(Lenet5Error):
    """An image that cannot be read."""


@dataclass(frozen=True)
class Digit:
    """What preprocessing made of one picture.

    pixels: (28, 28) uint8, MNIST convention: white ink 255 on black 0.
    verdict: "one digit", "empty", "several blobs" or "low contrast".
    confidence: in [0, 1], how sure preprocessing is that it found exactly one digit.
    """

    pixels: np.ndarray
    verdict: str
    confidence: float


def prepare_digit(source, steps: dict | None = None) -> Digit:
    """The MNIST-like digit in `source`: a path, the bytes of an image file, a PIL image, or a
    NumPy array ((H, W) grey, or (H, W, C) with 1 to 4 channels: grey, grey and alpha, RGB,
    RGBA; uint8 0..255, other integers by their type's range, floats in [0, 1] or stretched).

    A (28, 28) uint8 array is taken to be MNIST-like already and is kept as it is (only judged).
    An empty page is not an error (verdict "empty"); an unreadable input is a one-line ImageError.
    `steps`, when given, receives the pictures in between, each an (H, W) float array in [0, 1]:
    "upright" (oriented, ink from alpha, grey), "background removed" (darkness against the
    paper), "contrast" (noise cut off, cores at full ink); for a picture of the method.
    """
    if isinstance(source, np.ndarray):
        if source.shape == (DIGIT_SIDE, DIGIT_SIDE) and source.dtype == np.uint8:
            return _judge_mnist_like(source)
        grey, alpha = _array_channels(source)
        return _digit_from_channels(grey, alpha, steps)
    if isinstance(source, (str, os.PathLike)):
        return _from_file(Path(source), steps)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(source), steps)
    image_class = _pil_image_class(source)
    if image_class is not None and isinstance(source, image_class):
        with _decoding("image"):
            grey, alpha = _channels(_decode_small(source, "image"))
        return _digit_from_channels(grey, alpha, steps)
    raise ImageError(f"cannot read a digit from a {type(source).__name__}; expected a path, the bytes of "
                     f"an image file, a PIL image or a NumPy array")


def load_digit(path: str | Path) -> np.ndarray:
    """The 28×28 uint8 MNIST-style image of the digit in `path`; an ImageError when the page
    is empty. `prepare_digit` also says how sure it is and takes more than paths."""
    digit = prepare_digit(Path(path))
    if digit.verdict == "empty":
        raise ImageError(f"{path}: no digit found (the image is blank or has too little contrast)")
    return digit.pixels


# -- reading ---------------------------------------------------------------------------------

def _pillow():
    try:
        from PIL import Image
    except ModuleNotFoundError:
        raise ImageError("reading images needs Pillow: pip install 'lenet5[image]'") from None
    return Image


def image_extensions() -> set[str]:
    """The file name endings of the images Pillow reads (".png", ".jpg", ...)."""
    return set(_pillow().registered_extensions())


def _pil_image_class(source):
    """PIL's Image class when `source` could be one (Pillow is not imported for anything else)."""
    if not type(source).__module__.startswith("PIL"):
        return None
    return _pillow().Image


def _from_file(path: Path, steps: dict | None) -> Digit:
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, expected an image file")
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if not path.is_file():  # a FIFO or a device would block or never end
        raise ImageError(f"{path}: is not a regular file, expected an image file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ImageError(f"{path}: file of {size:,} bytes is larger than {MAX_FILE_BYTES:,}")
    return _from_opened(path, str(path), steps)


def _from_bytes(data: bytes, steps: dict | None) -> Digit:
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"image of {len(data):,} bytes is larger than {MAX_FILE_BYTES:,}")
    return _from_opened(io.BytesIO(data), "image bytes", steps)


def _from_opened(file, name: str, steps: dict | None) -> Digit:
    Image = _pillow()
    with _decoding(name):
        with Image.open(file) as image:
            grey, alpha = _channels(_decode_small(image, name))
    return _digit_from_channels(grey, alpha, steps)


@contextlib.contextmanager
def _decoding(name: str):
    """Pillow's warnings silenced (a decompression-bomb warning, a palette's transparency: the
    caller reports a problem in one line, and a warning printed before it would bury it) and a
    decoder's exceptions turned into one-line ImageErrors naming `name`."""
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        except ImageError:
            raise
        except UnidentifiedImageError:  # Pillow's own message quotes a file object's repr
            raise ImageError(f"{name}: cannot read image (not a format Pillow knows; expected PNG, "
                             "JPEG, GIF, BMP, TIFF, WebP...)") from None
        except (OSError, ValueError, SyntaxError, MemoryError, Image.DecompressionBombError) as error:
            detail = _one_line(f"{type(error).__name__}: {error}")
            raise ImageError(f"{name}: cannot read image ({detail})") from None


def _one_line(text: str) -> str:
    """A decoder's message as one short line: some hold newlines, some quote whole buffers."""
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def _decode_small(image, name: str):
    """The first frame of `image`, decoded, reduced to at most `WORK_SIDE` a side, and upright.

    Refuses, before decoding, an image whose decoded raster plus its conversion to a mode
    that can be averaged would take more than `DECODE_BUDGET` bytes. The limit is on bytes, not
    on the pixels the header announces: a JPEG photo of 48 megapixels decodes at 1/8 scale.
    """
    from PIL import ImageOps

    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError(f"{name}: {width}x{height} pixels, expected at least 1x1")
    image.seek(0)  # an animated image: its first frame
    if max(width, height) > WORK_SIDE:  # a JPEG then decodes at 1/2, 1/4 or 1/8 scale
        scale = WORK_SIDE / max(width, height)
        image.draft("L", (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))))
    width, height = image.size
    target = _reducible_mode(image)
    per_pixel = _bytes_per_pixel(image.mode) + (_bytes_per_pixel(target) if target != image.mode else 0)
    needed = width * height * per_pixel
    if needed > DECODE_BUDGET:
        raise ImageError(f"{name}: decoding {width}x{height} {image.mode} pixels needs {needed / 2**20:,.0f} MiB, "
                         f"more than the {DECODE_BUDGET / 2**20:,.0f} MiB allowed; scale the image down")
    image.load()
    orientation = image.getexif().get(0x0112, 1)  # read now: a PNG may keep it after the pixels
    if target != image.mode:
        image = image.convert(target)
    if image.mode == "F":
        image = _tame_floats(image)
    factor = math.ceil(max(image.size) / WORK_SIDE)
    if factor > 1:
        image = image.reduce(factor)
    if orientation != 1:
        exif = image.getexif()
        exif[0x0112] = orientation
        image.info["exif"] = exif.tobytes()
        image = ImageOps.exif_transpose(image)
    return image


def _reducible_mode(image) -> str:
    """The mode `image` is converted to before box reduction (its own when it can be averaged)."""
    if image.mode in _REDUCIBLE:
        return image.mode
    if image.mode.startswith("I"):  # I, I;16, I;16B...: integers of any range, as floats
        return "F"
    if image.mode in ("P", "PA") and (image.mode == "PA" or "transparency" in image.info):
        return "RGBA"
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
    reduction and are refused by `_channels`.
    """
    low, high = image.getextrema()
    largest = max(abs(low), abs(high))
    if math.isfinite(largest) and largest > 1e30:
        image = image.point(lambda value: value * (1.0 / largest))
    return image


def _channels(image) -> tuple[np.ndarray, np.ndarray | None]:
    """(grey, alpha) of a reduced image, floats in [0, 1]; alpha None when it has none.

    A float image (what integer images became) is stretched from its own range: such files
    hold measurements, not grey levels of a known scale.
    """
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all():  # a float image may hold inf or NaN: no grey level
            raise ValueError("pixel values must be finite, found inf or NaN")
        return _stretched(values), None
    if image.mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float64) / 255.0
        return np.asarray(rgba.convert("RGB").convert("L"), dtype=np.float64) / 255.0, alpha
    return np.asarray(image.convert("L"), dtype=np.float64) / 255.0, None


def _stretched(values: np.ndarray) -> np.ndarray:
    low, high = values.min(), values.max()
    return (values - low) / (high - low) if high > low else np.zeros_like(values, dtype=np.float64)


def _array_channels(array: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(grey, alpha) in [0, 1] of an (H, W) or (H, W, C) array, box-reduced to `WORK_SIDE`."""
    shape = array.shape
    if array.ndim not in (2, 3) or (array.ndim == 3 and shape[2] not in (1, 2, 3, 4)) or 0 in shape:
        raise ImageError(f"array of shape {shape}: expected (H, W) grey or (H, W, C) with C of 1 to 4 "
                         "(grey, grey and alpha, RGB, RGBA)")
    values = _reduced(array, math.ceil(max(shape[:2]) / WORK_SIDE))
    if values.ndim == 2:
        return values, None
    channels = values.shape[2]
    colour = values[..., : 3 if channels >= 3 else 1]
    grey = colour @ np.array([0.299, 0.587, 0.114]) if colour.shape[2] == 3 else colour[..., 0]
    alpha = values[..., -1] if channels in (2, 4) else None
    return grey, alpha


def _unit_scale(array: np.ndarray):
    """The function that turns a part of `array` into float64 grey levels in [0, 1]: integers
    by their type's range; floats as they are within [0, 1], else stretched from the whole
    array's range (not grey levels of a known scale), which is read without a copy."""
    kind = array.dtype.kind
    if kind == "b":
        return lambda part: part.astype(np.float64)
    if kind in "ui":
        info = np.iinfo(array.dtype)
        low = max(info.min, 0)
        return lambda part: np.clip((part.astype(np.float64) - low) / (info.max - low), 0.0, 1.0)
    if kind != "f":
        raise ImageError(f"array of dtype {array.dtype}: expected integer, boolean or float pixels")
    low, high = float(array.min()), float(array.max())  # NaN anywhere makes both NaN
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ImageError(f"array of shape {array.shape}: pixel values must be finite, found inf or NaN")
    if 0 <= low and high <= 1:
        return lambda part: part.astype(np.float64)
    if high == low:
        return lambda part: np.zeros(part.shape, np.float64)
    return lambda part: (part.astype(np.float64) - low) / (high - low)


# Elements of an array converted to floats at a time while it is reduced (8 MiB of float64).
TILE_ELEMENTS = 1 << 20


def _reduced(array: np.ndarray, factor: int) -> np.ndarray:
    """`array` as grey levels (`_unit_scale`) box-reduced by `factor` (`_block_mean`), converted
    one tile of whole blocks at a time: a float copy of a large array is eight times its size,
    and its arithmetic doubles that again (a 115 MiB uint8 array once peaked at 2.9 GB).

    The budget is on this working set, not on the array, which its caller already holds: an
    array is refused, before any of it is converted, only when a tile and the result would
    exceed `DECODE_BUDGET` (a tile is at least one block, large for an array both very long
    and wide)."""
    height, width = array.shape[:2]
    depth = array.size // (height * width)
    rows, columns = height, width
    if factor > 1:
        rows = min(height, factor * max(1, TILE_ELEMENTS // (factor * width * depth)))
        if rows * width * depth > TILE_ELEMENTS:
            columns = min(width, factor * max(1, TILE_ELEMENTS // (rows * factor * depth)))
    reduced = math.ceil(height / factor) * math.ceil(width / factor) * depth
    needed = 8 * (3 * rows * columns * depth + reduced)  # a tile and two temporaries, and the result
    if needed > DECODE_BUDGET:
        raise ImageError(f"array of shape {array.shape}: reducing it to {WORK_SIDE} pixels a side needs "
                         f"{needed / 2**20:,.0f} MiB, more than the {DECODE_BUDGET / 2**20:,.0f} MiB allowed; "
                         "scale it down")
    unit = _unit_scale(array)
    if factor == 1:
        return unit(array)
    out = np.empty((math.ceil(height / factor), math.ceil(width / factor)) + array.shape[2:])
    for top in range(0, height, rows):
        for left in range(0, width, columns):
            block = _block_mean(unit(array[top: top + rows, left: left + columns]), factor)
            out[top // factor: top // factor + block.shape[0], left // factor: left // factor + block.shape[1]] = block
    return out


def _block_max(values: np.ndarray, factor: int) -> np.ndarray:
    """Maxima of factor×factor blocks of a 2-D array of values >= 0."""
    height, width = values.shape
    rows, cols = math.ceil(height / factor), math.ceil(width / factor)
    padded = np.zeros((rows * factor, cols * factor))
    padded[:height, :width] = values
    return padded.reshape(rows, factor, cols, factor).max(axis=(1, 3))


def _block_mean(values: np.ndarray, factor: int) -> np.ndarray:
    """Means of factor×factor blocks (partial blocks at the edges averaged over what they hold),
    summed in place of a padded copy: a few rows of a wide image would be padded to `factor`."""
    height, width = values.shape[:2]
    tops, lefts = np.arange(0, height, factor), np.arange(0, width, factor)
    sums = np.add.reduceat(np.add.reduceat(values, tops, axis=0), lefts, axis=1)
    counts = np.outer(np.minimum(factor, height - tops), np.minimum(factor, width - lefts))
    return sums / (counts[..., None] if values.ndim == 3 else counts)


# -- from grey (and alpha) to a digit --------------------------------------------------------

def _digit_from_channels(grey: np.ndarray, alpha: np.ndarray | None, steps: dict | None = None) -> Digit:
    ink, contrast = _ink(grey, alpha, {} if steps is None else steps)
    return _digit_from_ink(ink, contrast)


def _ink(grey: np.ndarray, alpha: np.ndarray | None, steps: dict) -> tuple[np.ndarray, float]:
    """Ink in [0, 1] (1 where a stroke's core is) with the background removed, and the stroke's
    contrast: how much darker than its paper a stroke's core is, as a fraction."""
    if alpha is not None:
        grey = _ink_from_alpha(grey, alpha)
    steps["upright"] = grey
    if float(grey.max() - grey.min()) < NO_CONTRAST:  # one colour throughout: a blank page
        return np.zeros_like(grey), 0.0
    if _light_ink(grey):
        grey = 1.0 - grey
    if max(grey.shape) >= CALM_FROM:  # grain averaged out, at a scale below any stroke's
        grey = _box_filter(grey, 3)
    darkness = np.clip(1.0 - grey / np.maximum(_paper(grey), 0.05), 0.0, 1.0)
    steps["background removed"] = darkness
    paper, noise = _paper_noise(darkness)
    noise_floor = min(0.5, paper + 4 * noise)
    ink = np.clip((darkness - noise_floor) / (1.0 - noise_floor), 0.0, 1.0)
    core = _core_level(ink)
    contrast = float(core * (1.0 - noise_floor) + noise_floor) if core > 0 else 0.0
    if core == 0 or contrast - paper < STANDS_OUT * noise:  # only the paper's own grain stands out
        ink, contrast = np.zeros_like(grey), 0.0
    else:
        ink = _without_ruled_lines(np.clip(ink / core, 0.0, 1.0))
    steps["contrast"] = ink
    return ink, contrast


def _without_ruled_lines(ink: np.ndarray) -> np.ndarray:
    """`ink` without the lines of ruled or squared paper: thin bands of rows (or columns) inked
    across `RULED` of the picture, each replaced by the lesser of the rows either side, so that
    a stroke crossing a line keeps its crossing."""
    for axis in (0, 1):
        lines = ink if axis == 0 else ink.T
        ruled = (lines > 0.05).mean(axis=1) >= RULED  # a line's faint edges too
        if not ruled.any():
            continue
        lines = lines.copy()
        edges = np.diff(np.concatenate([[0], ruled.astype(np.int8), [0]]))
        for start, stop in zip(np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]):
            if stop - start > max(2, len(lines) // 25):  # a broad band is no ruled line
                continue
            sides = [lines[i] for i in (start - 1, stop) if 0 <= i < len(lines)]
            lines[start:stop] = np.minimum.reduce(sides) if sides else 0.0
        ink = lines if axis == 0 else lines.T
    return ink


def _ink_from_alpha(grey: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Grey on white paper from a picture with transparency.

    Where the opaque pixels are all of one colour (white, or any colour, on a transparent
    canvas), the colour says nothing and the alpha channel is the ink. Otherwise (dark ink on
    a partly transparent sheet) the colour carries it, composited onto white paper.
    """
    opaque = alpha > 0.5
    if not opaque.any() or alpha.min() > 0.5:  # no transparency to speak of
        return grey * alpha + (1.0 - alpha)
    if np.percentile(grey[opaque], 95) - np.percentile(grey[opaque], 5) < 0.2:
        return 1.0 - alpha  # dark where opaque: the drawing
    return grey * alpha + (1.0 - alpha)


def _light_ink(grey: np.ndarray) -> bool:
    """Whether ink is lighter than its background.

    A border of one even shade is background: ink is then lighter when the border is nearer the
    dark end of the picture's range. A border that is not even (a shadow over half the page)
    says nothing, so then: within a small part of the picture, most pixels are background (its
    median) and ink is the tail on one side; summed over a 4×4 grid of parts, the longer tail
    says which side ink is on (bold strokes can outvote the background in a part, hence the
    border first).
    """
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    border_low, border_high = np.percentile(border, [10, 90])
    if border_high - border_low < 0.1:
        low, high = np.percentile(grey, [0.5, 99.5])
        return bool(np.median(border) < (low + high) / 2)
    small, _ = _analysis_copy(grey)
    darker = lighter = 0.0
    for rows in np.array_split(small, 4, axis=0):
        for part in np.array_split(rows, 4, axis=1):
            if part.size:
                low, middle, high = np.percentile(part, [2, 50, 98])
                darker += middle - low
                lighter += high - middle
    return bool(lighter > darker)


def _paper(grey: np.ndarray) -> np.ndarray:
    """The paper's brightness under each pixel of `grey` (dark ink on light paper).

    A morphological closing with a window a quarter of the image's side erases every stroke
    narrower than that and keeps what is broad: the paper, its shadows and gradients. It is
    worked out at `ANALYSIS_SIDE`, smoothed, and brought back to the image's size.
    """
    small, factor = _analysis_copy(grey)
    window = max(3, round(max(small.shape) / 4)) | 1
    closed = _min_filter(_max_filter(small, window), window)
    smooth = _box_filter(closed, max(1, window // 4) | 1)  # more would spread a shadow's edge
    if factor == 1:
        return smooth
    return _resize_float(smooth, grey.shape)


def _paper_noise(darkness: np.ndarray) -> tuple[float, float]:
    """The paper's darkness and its noise (paper's texture, a sensor's grain): the median (paper
    is most of the picture) and a robust standard deviation; (0, 0) for a clean digital image."""
    median = float(np.median(darkness))
    return median, float(np.median(np.abs(darkness - median))) * 1.4826


def _core_level(ink: np.ndarray) -> float:
    """A stroke's core: the upper quartile of the pixels above half the peak (the peak taken on
    2×2 means, so that one hot pixel does not set it). 0 when there is no ink."""
    height, width = ink.shape
    pairs = ink[: height - height % 2 or None, : width - width % 2 or None]
    if pairs.shape[0] >= 2 and pairs.shape[1] >= 2:
        pairs = pairs.reshape(pairs.shape[0] // 2, 2, pairs.shape[1] // 2, 2).mean(axis=(1, 3))
    peak = float(pairs.max())
    if peak <= 0:
        return 0.0
    return float(np.percentile(ink[ink > peak / 2], 75))


def _judge_mnist_like(pixels: np.ndarray) -> Digit:
    _, verdict, confidence = _blobs(pixels / 255.0, contrast=float(pixels.max()) / 255.0)
    return Digit(pixels.copy(), verdict, confidence)


def _digit_from_ink(ink: np.ndarray, contrast: float) -> Digit:
    """Crop the digit's group of blobs, fit it into 20×20 and centre it by mass in 28×28."""
    box, verdict, confidence = _blobs(ink, contrast)
    if verdict == "empty":
        return Digit(np.zeros((DIGIT_SIDE, DIGIT_SIDE), np.uint8), verdict, confidence)
    top, bottom, left, right = box
    return Digit(_fitted(_thickened(ink[top:bottom, left:right])), verdict, confidence)


def _thickened(ink: np.ndarray) -> np.ndarray:
    """The cropped digit with strokes of at least MNIST's width (`THICK` of its size).

    A stroke's width is twice its area over its outline's length. A digit with thin strokes is
    first reduced to `THICKEN_SIDE` by block maxima (which keep a hairline at full ink, where
    averaging would fade it) and its strokes are then widened by a maximum filter.
    """
    mask = np.pad(ink > 0.5, 1)
    inside = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    area, outline = int(mask.sum()), int(mask.sum() - inside.sum())
    if outline == 0 or 2 * area / outline >= THIN * max(ink.shape):
        return ink
    factor = math.ceil(max(ink.shape) / THICKEN_SIDE)
    small = _block_max(ink, factor) if factor > 1 else ink
    width = 2 * area / outline / factor
    grow = int(round(THICK * max(small.shape) - width))
    return _max_filter(small, grow | 1) if grow >= 2 else small


def _blobs(ink: np.ndarray, contrast: float) -> tuple[tuple[int, int, int, int] | None, str, float]:
    """(the digit's bounding box in `ink`, verdict, confidence).

    Blobs are the 8-connected pieces of ink at `ANALYSIS_SIDE`; blobs whose boxes touch (each
    grown by a tenth of the ink's height) form one group, so a 5's detached bar or a 4 drawn in
    two strokes stay one digit while two digits side by side do not.
    """
    if contrast < NO_CONTRAST:
        return None, "empty", 0.0
    small, factor = _analysis_copy(ink)
    labels, count = _label(small > INK_LEVEL)
    if count == 0:
        return None, "empty", 0.0
    masses = np.bincount(labels.ravel(), weights=small.ravel(), minlength=count + 1)[1:]
    boxes = _boxes(labels, count)
    total = masses.sum()
    keep = masses >= 0.02 * total  # specks of dust are not part of anything
    if not keep.any():
        return None, "empty", 0.0
    rows = np.nonzero(np.any(labels > 0, axis=1))[0]
    margin = max(1, round(0.1 * (rows.max() - rows.min() + 1)))
    groups = _groups([boxes[i] for i in np.nonzero(keep)[0]], margin)
    group_masses = [sum(masses[np.nonzero(keep)[0][i]] for i in group) for group in groups]
    order = np.argsort(group_masses)[::-1]
    best = [np.nonzero(keep)[0][i] for i in groups[order[0]]]
    share = group_masses[order[0]] / total
    top = min(boxes[i][0] for i in best)
    bottom = max(boxes[i][1] for i in best)
    left = min(boxes[i][2] for i in best)
    right = max(boxes[i][3] for i in best)
    box = _full_box(ink, (top, bottom, left, right), factor)
    seconds = sum(1 for mass in group_masses if mass >= SIGNIFICANT * total) - 1
    strength = min(1.0, contrast / (2 * LOW_CONTRAST))
    confidence = float(np.clip(strength * share, 0.0, 1.0))
    if seconds > 0:
        return box, "several blobs", min(confidence, 0.45)
    if contrast < LOW_CONTRAST:
        return box, "low contrast", min(confidence, 0.45)
    return box, "one digit", max(confidence, 0.5)


def _full_box(ink: np.ndarray, box, factor: int) -> tuple[int, int, int, int]:
    """A box found at analysis scale, in `ink`'s pixels, grown to take in the faint edges of
    the strokes within a margin of it."""
    top, bottom, left, right = (value * factor for value in box)
    height, width = ink.shape
    margin_y, margin_x = max(1, (bottom - top) // 8) + factor, max(1, (right - left) // 8) + factor
    top, left = max(0, top - margin_y), max(0, left - margin_x)
    bottom, right = min(height, bottom + margin_y), min(width, right + margin_x)
    window = ink[top:bottom, left:right] > 0.05
    rows, cols = np.nonzero(np.any(window, axis=1))[0], np.nonzero(np.any(window, axis=0))[0]
    if len(rows) == 0:
        return top, bottom, left, right
    return top + rows[0], top + rows[-1] + 1, left + cols[0], left + cols[-1] + 1


def _fitted(ink: np.ndarray) -> np.ndarray:
    """`ink` (cropped to the digit) fitted into 20×20, aspect kept, centred by mass in 28×28."""
    Image = _pillow()

    height, width = ink.shape
    scale = BOX_SIDE / max(height, width)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if (height, width) == (new_size[1], new_size[0]):
        box = ink * 255.0
    else:
        fitted = Image.fromarray(ink.astype(np.float32), mode="F").resize(new_size, Image.Resampling.LANCZOS)
        box = np.clip(np.asarray(fitted, dtype=np.float64), 0.0, 1.0)
        # Shrinking averages a stroke's core with its edges: stretch the core back to full ink.
        box = np.clip(box / max(_core_level(box), 0.5), 0.0, 1.0) * 255.0
    field = np.zeros((DIGIT_SIDE, DIGIT_SIDE))
    top, left = (DIGIT_SIDE - box.shape[0]) // 2, (DIGIT_SIDE - box.shape[1]) // 2
    field[top: top + box.shape[0], left: left + box.shape[1]] = box
    total = field.sum()
    if total > 0:
        ys, xs = np.indices(field.shape)
        centre = DIGIT_SIDE / 2  # where MNIST's centres of mass are (14.0 on average, measured)
        field = _shift(field, int(round(centre - (ys * field).sum() / total)),
                       int(round(centre - (xs * field).sum() / total)))
    return np.clip(np.rint(field), 0, 255).astype(np.uint8)


def mnist_like(grey: np.ndarray, name: str = "image") -> np.ndarray:
    """The 28×28 MNIST-like digit of a grey picture in [0, 1] (either polarity); an ImageError
    when it holds none."""
    digit = _digit_from_channels(np.asarray(grey, dtype=np.float64), None)
    if digit.verdict == "empty":
        raise ImageError(f"{name}: no digit found (the image is blank or has too little contrast)")
    return digit.pixels


# -- small image operations in NumPy ---------------------------------------------------------

def _analysis_copy(values: np.ndarray) -> tuple[np.ndarray, int]:
    """`values` box-reduced so its longest side is at most `ANALYSIS_SIDE`, and the factor."""
    factor = max(1, math.ceil(max(values.shape) / ANALYSIS_SIDE))
    return (_block_mean(values, factor) if factor > 1 else values), factor


def _sliding(values: np.ndarray, window: int, axis: int, reduce) -> np.ndarray:
    half = window // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (half, half)
    padded = np.pad(values, pad, mode="edge")
    view = np.lib.stride_tricks.sliding_window_view(padded, window, axis=axis)
    return reduce(view, axis=-1)


def _max_filter(values: np.ndarray, window: int) -> np.ndarray:
    return _sliding(_sliding(values, window, 0, np.max), window, 1, np.max)


def _min_filter(values: np.ndarray, window: int) -> np.ndarray:
    return _sliding(_sliding(values, window, 0, np.min), window, 1, np.min)


def _box_filter(values: np.ndarray, window: int) -> np.ndarray:
    return _sliding(_sliding(values, window, 0, np.mean), window, 1, np.mean)


def _resize_float(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear interpolation of a smooth map to `shape` (pixel centres aligned), one axis at a
    time."""
    for axis, size in enumerate(shape):
        old = values.shape[axis]
        position = np.clip((np.arange(size) + 0.5) * old / size - 0.5, 0, old - 1)
        low = np.floor(position).astype(int)
        high = np.minimum(low + 1, old - 1)
        weight = position - low
        weight = weight[:, None] if axis == 0 else weight[None, :]
        values = np.take(values, low, axis=axis) * (1 - weight) + np.take(values, high, axis=axis) * weight
    return values


def _label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of `mask`: (labels, 1..count; 0 for background), by flood fill."""
    labels = np.zeros(mask.shape, np.int32)
    height, width = mask.shape
    count = 0
    for start_y, start_x in zip(*np.nonzero(mask)):
        if labels[start_y, start_x]:
            continue
        count += 1
        labels[start_y, start_x] = count
        stack = [(start_y, start_x)]
        while stack:
            y, x = stack.pop()
            for ny in (y - 1, y, y + 1):
                for nx in (x - 1, x, x + 1):
                    if 0 <= ny < height and 0 <= nx < width and mask[ny, nx] and not labels[ny, nx]:
                        labels[ny, nx] = count
                        stack.append((ny, nx))
    return labels, count


def _boxes(labels: np.ndarray, count: int) -> list[tuple[int, int, int, int]]:
    """(top, bottom, left, right), bottom and right exclusive, of each label 1..count."""
    ys, xs = np.nonzero(labels)
    ids = labels[ys, xs] - 1
    tops = np.full(count, labels.shape[0])
    lefts = np.full(count, labels.shape[1])
    bottoms, rights = np.zeros(count, int), np.zeros(count, int)
    np.minimum.at(tops, ids, ys)
    np.minimum.at(lefts, ids, xs)
    np.maximum.at(bottoms, ids, ys + 1)
    np.maximum.at(rights, ids, xs + 1)
    return list(zip(tops.tolist(), bottoms.tolist(), lefts.tolist(), rights.tolist()))


def _groups(boxes: list[tuple[int, int, int, int]], margin: int) -> list[list[int]]:
    """Indices of `boxes` grouped where boxes grown by `margin` overlap (transitively)."""
    group_of = list(range(len(boxes)))

    def root(i):
        while group_of[i] != i:
            group_of[i] = group_of[group_of[i]]
            i = group_of[i]
        return i

    for i, (top, bottom, left, right) in enumerate(boxes):
        for j in range(i):
            other = boxes[j]
            if (top - margin < other[1] + margin and other[0] - margin < bottom + margin
                    and left - margin < other[3] + margin and other[2] - margin < right + margin):
                group_of[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(boxes)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def _shift(array: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate without wrapping around; what moves out is dropped, what moves in is 0."""
    out = np.zeros_like(array)
    h, w = array.shape
    src_y, dst_y = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    src_x, dst_x = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[dst_y, dst_x] = array[src_y, src_x]
    return out
