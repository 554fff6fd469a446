"""Reading a picture: a file, bytes, a PIL image or an array, decoded small and upright, as
grey levels and alpha in [0, 1].

A JPEG is decoded at 1/2, 1/4 or 1/8 scale (`Image.draft`) and any image is box-reduced to at
most `WORK_SIDE` pixels a side straight after decoding, so a 48-megapixel photo costs a few
MiB; what decoding would take is checked against `DECODE_BUDGET` (bytes) from the header,
before a pixel is decoded. A photo stored sideways with an EXIF orientation tag is turned
upright. Everything a decoder can raise becomes a one-line ImageError naming the input.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import warnings
from pathlib import Path

import numpy as np

from ..errors import Lenet5Error
from ..text import one_line
from .operations import block_mean

MAX_FILE_BYTES = 64 * 1024 * 1024
DECODE_BUDGET = 128 * 1024 * 1024  # bytes a decoded raster and its conversion, or an array's conversion, may take
WORK_SIDE = 1024  # longest side kept after decoding: ample for a digit that becomes 20×20
MAX_MESSAGE = 300  # characters of a decoder's own message quoted in an error

# Modes whose pixels Pillow's box reduction averages correctly, kept as they are. Palette
# indices, bilevel pixels and 16-bit integers are not (the first two cannot be averaged; the
# reducer refuses the third and overflows on large 32-bit integers), so those are converted
# first, at full size, which the budget counts.
_REDUCIBLE = {"L", "LA", "La", "RGB", "RGBA", "RGBa", "CMYK", "YCbCr", "LAB", "HSV", "F"}


class ImageError(Lenet5Error):
    """An image that cannot be read."""


def read_channels(source) -> tuple[np.ndarray, np.ndarray | None]:
    """(grey, alpha) of a picture, floats in [0, 1] at most `WORK_SIDE` a side; alpha is None
    when it has none. `source`: a path, the bytes of an image file, a PIL image, or a NumPy
    array ((H, W) grey, or (H, W, C) with 1 to 4 channels: grey, grey and alpha, RGB, RGBA;
    uint8 0..255, other integers by their type's range, floats in [0, 1] or stretched).
    Anything unreadable is a one-line ImageError."""
    if isinstance(source, np.ndarray):
        return array_channels(source)
    if isinstance(source, (str, os.PathLike)):
        return _from_file(Path(source))
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(source))
    image_class = pil_image_class(source)
    if image_class is not None and isinstance(source, image_class):
        with _decoding("image"):
            return _channels(_decode_small(source, "image"))
    raise ImageError(f"cannot read a digit from a {type(source).__name__}; expected a path, the bytes of "
                     f"an image file, a PIL image or a NumPy array")



def pillow():
    try:
        from PIL import Image
    except ModuleNotFoundError:
        raise ImageError("reading images needs Pillow: pip install 'lenet5[image]'") from None
    return Image


def image_extensions() -> set[str]:
    """The file name endings of the images Pillow reads (".png", ".jpg", ...)."""
    return set(pillow().registered_extensions())


def pil_image_class(source):
    """PIL's Image class when `source` could be one (Pillow is not imported for anything else)."""
    if not type(source).__module__.startswith("PIL"):
        return None
    return pillow().Image


def _from_file(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, expected an image file")
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if not path.is_file():  # a FIFO or a device would block or never end
        raise ImageError(f"{path}: is not a regular file, expected an image file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ImageError(f"{path}: file of {size:,} bytes is larger than {MAX_FILE_BYTES:,}")
    return _from_opened(path, str(path))


def _from_bytes(data: bytes) -> tuple[np.ndarray, np.ndarray | None]:
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"image of {len(data):,} bytes is larger than {MAX_FILE_BYTES:,}")
    return _from_opened(io.BytesIO(data), "image bytes")


def _from_opened(file, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    Image = pillow()
    with _decoding(name):
        with Image.open(file) as image:
            return _channels(_decode_small(image, name))


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
            detail = one_line(f"{type(error).__name__}: {error}", MAX_MESSAGE)
            raise ImageError(f"{name}: cannot read image ({detail})") from None


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


def array_channels(array: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
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
            block = block_mean(unit(array[top: top + rows, left: left + columns]), factor)
            out[top // factor: top // factor + block.shape[0], left // factor: left // factor + block.shape[1]] = block
    return out
