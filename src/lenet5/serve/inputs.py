"""What a `POST /predict` body holds, checked: image files, or 28×28 pixel arrays.

Accepted bodies:
    image/png, image/jpeg (any image/*)     one image file, the raw body
    multipart/form-data                      one or more fields named `image`, each a file
    application/json                         {"pixels": [[28 rows of 28 numbers 0..255]]}
                                             or {"batch": [{"pixels": ...}, ...]}
Anything else is a `RequestError` carrying the HTTP status and a short kind (for the metrics)
and a message naming the problem: what was expected and what was found.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass

import numpy as np

from ..errors import Lenet5Error
from ..files.json_fields import is_number
from ..text import one_line

MAX_BODY_BYTES = 10 * 1024 * 1024  # a phone photo is 2 to 5 MB; a digit needs far less
MAX_IMAGES = 256  # per request, in a batch
MAX_PIXELS = 50_000_000  # one image: a 48-megapixel phone photo passes; beyond, it is refused undecoded
# All the images of one request, so that one request holds a decoding slot for a second or two
# at most (a 7000×7000 PNG takes 0.1 to 0.6 s to decode on a 2-core machine, by mode).
MAX_REQUEST_PIXELS = 2 * MAX_PIXELS
SIDE = 28


class RequestError(Lenet5Error):
    """A request the service refuses: `status` (4xx), `kind` (for the metrics), the message."""

    def __init__(self, status: int, kind: str, message: str):
        super().__init__(message)
        self.status, self.kind = status, kind


@dataclass(frozen=True)
class Item:
    """One image of a request: the bytes of an image file, or 28×28 uint8 pixels."""

    file: bytes | None = None
    pixels: np.ndarray | None = None
    name: str = "body"  # where it came from, for error messages: "body", "image #2", "batch[3]"


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def items_from_json(body: bytes) -> tuple[list[Item], bool]:
    """(items, whether the request was a batch) of a JSON body."""
    if not body.strip():
        raise RequestError(400, "empty_body", "the request body is empty; expected JSON {\"pixels\": [[...]]}")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as error:  # bad UTF-8 or syntax, a 5,000-digit number, deep nesting
        raise RequestError(400, "malformed_json", f"the body is not valid JSON ({one_line(error, 120)})") from None
    if isinstance(document, dict) and "batch" in document:
        batch = document["batch"]
        if not isinstance(batch, list) or not batch:
            raise RequestError(422, "bad_shape", f"'batch' must be a non-empty list of {{\"pixels\": ...}} "
                                                 f"objects, found {_kind(batch)}")
        if len(batch) > MAX_IMAGES:
            raise RequestError(413, "too_many_images", f"'batch' holds {len(batch)} images; at most "
                                                       f"{MAX_IMAGES} per request")
        return [Item(pixels=pixels_of(entry, f"batch[{i}]"), name=f"batch[{i}]") for i, entry in enumerate(batch)], True
    return [Item(pixels=pixels_of(document, "body"))], False


def pixels_of(entry, where: str) -> np.ndarray:
    """The (28, 28) uint8 image of a JSON `{"pixels": ...}` object."""
    if not isinstance(entry, dict) or "pixels" not in entry:
        raise RequestError(422, "bad_shape", f"{where}: expected an object with a 'pixels' field "
                                             f"(28 rows of 28 numbers 0..255), found {_kind(entry)}")
    rows = entry["pixels"]
    if not (isinstance(rows, list) and len(rows) == SIDE and all(isinstance(row, list) for row in rows)):
        raise RequestError(422, "bad_shape", f"{where}: 'pixels' must be {SIDE} rows, found {_kind(rows)}")
    lengths = sorted({len(row) for row in rows})
    if lengths != [SIDE]:
        raise RequestError(422, "bad_shape", f"{where}: 'pixels' must be {SIDE} rows of {SIDE} numbers, "
                                             f"found rows of {', '.join(map(str, lengths[:5]))} numbers")
    if not all(_finite_number(value) for row in rows for value in row):
        raise RequestError(422, "bad_shape", f"{where}: every pixel must be a number 0..255, found "
                                             f"{_kind(next(v for row in rows for v in row if not _finite_number(v)))}")
    outside = next((value for row in rows for value in row if not 0 <= value <= 255), None)
    if outside is not None:  # compared as Python numbers: an int of 300 digits is no float
        raise RequestError(422, "bad_shape", f"{where}: pixel values must be 0..255, found {str(outside)[:40]}")
    return np.rint(np.asarray(rows, dtype=np.float64)).astype(np.uint8)


def check_image_headers(items: list[Item]) -> None:
    """Refuse, from the headers alone and before any image is decoded, a request whose images
    would take too long to decode: one of more than `MAX_PIXELS` pixels (a decompression bomb:
    a small file of a huge, easily compressed raster), or more than `MAX_REQUEST_PIXELS`
    together (a multipart body of many bombs just under the limit). What Pillow cannot read is
    left for `prepare_digit` to report."""
    total = sum(_header_pixels(item.file, item.name) for item in items if item.file is not None)
    if total > MAX_REQUEST_PIXELS:
        raise RequestError(413, "too_many_pixels", f"the images hold {total:,} pixels together; at most "
                                                   f"{MAX_REQUEST_PIXELS:,} per request (send fewer, or smaller)")


def _header_pixels(data: bytes, where: str) -> int:
    """Width × height as the header announces it (0 when Pillow cannot read the header).

    Only the first frame of an animation is ever decoded (as `lenet5 predict` reads it), and
    the others are not even counted: counting means walking every frame (Pillow's `n_frames`
    on a GIF or a TIFF; quadratic in the frames of a TIFF) or decoding each (`seek` on a GIF or
    an APNG), so a 10,000-frame GIF costs what its first frame costs."""
    import warnings

    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's DecompressionBombWarning: refused below instead
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError:
            raise RequestError(422, "bad_image", f"{where}: the image is larger than {MAX_PIXELS:,} pixels "
                                                 f"(a decompression bomb?)") from None
        except Exception:  # noqa: BLE001 - unreadable: prepare_digit says why, in its own words
            return 0
    with image:
        width, height = image.size
    if width * height > MAX_PIXELS:
        raise RequestError(422, "bad_image", f"{where}: {width}x{height} pixels is more than the "
                                             f"{MAX_PIXELS:,} the service decodes (a decompression bomb?)")
    return width * height


def _finite_number(value) -> bool:
    return is_number(value) and math.isfinite(value)


def _kind(value) -> str:
    """A JSON value in an error message, by its type and size, never its (maybe huge) content."""
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return f"an object with keys {', '.join(map(repr, list(value)[:5]))}" if value else "an empty object"
    if isinstance(value, str):
        return f"a string of {len(value)} characters"
    return {bool: "a boolean", type(None): "null"}.get(type(value), repr(value)[:40])
