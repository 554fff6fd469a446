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

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .decode import ImageError, pillow, read_channels
from .operations import (
    block_max, block_mean, box_filter, label, label_boxes, max_filter, min_filter, overlapping_groups, resize_float,
    shift
)

ANALYSIS_SIDE = 128  # longest side the background and the blobs are worked out at

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
    if isinstance(source, np.ndarray) and source.shape == (DIGIT_SIDE, DIGIT_SIDE) and source.dtype == np.uint8:
        return _judge_mnist_like(source)
    grey, alpha = read_channels(source)
    return _digit_from_channels(grey, alpha, steps)


def load_digit(path: str | Path) -> np.ndarray:
    """The 28×28 uint8 MNIST-style image of the digit in `path`; an ImageError when the page
    is empty. `prepare_digit` also says how sure it is and takes more than paths."""
    digit = prepare_digit(Path(path))
    if digit.verdict == "empty":
        raise ImageError(f"{path}: no digit found (the image is blank or has too little contrast)")
    return digit.pixels



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
        grey = box_filter(grey, 3)
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
    closed = min_filter(max_filter(small, window), window)
    smooth = box_filter(closed, max(1, window // 4) | 1)  # more would spread a shadow's edge
    if factor == 1:
        return smooth
    return resize_float(smooth, grey.shape)


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
    small = block_max(ink, factor) if factor > 1 else ink
    width = 2 * area / outline / factor
    grow = int(round(THICK * max(small.shape) - width))
    return max_filter(small, grow | 1) if grow >= 2 else small


def _blobs(ink: np.ndarray, contrast: float) -> tuple[tuple[int, int, int, int] | None, str, float]:
    """(the digit's bounding box in `ink`, verdict, confidence).

    Blobs are the 8-connected pieces of ink at `ANALYSIS_SIDE`; blobs whose boxes touch (each
    grown by a tenth of the ink's height) form one group, so a 5's detached bar or a 4 drawn in
    two strokes stay one digit while two digits side by side do not.
    """
    if contrast < NO_CONTRAST:
        return None, "empty", 0.0
    small, factor = _analysis_copy(ink)
    labels, count = label(small > INK_LEVEL)
    if count == 0:
        return None, "empty", 0.0
    masses = np.bincount(labels.ravel(), weights=small.ravel(), minlength=count + 1)[1:]
    boxes = label_boxes(labels, count)
    total = masses.sum()
    keep = masses >= 0.02 * total  # specks of dust are not part of anything
    if not keep.any():
        return None, "empty", 0.0
    rows = np.nonzero(np.any(labels > 0, axis=1))[0]
    margin = max(1, round(0.1 * (rows.max() - rows.min() + 1)))
    groups = overlapping_groups([boxes[i] for i in np.nonzero(keep)[0]], margin)
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
    Image = pillow()

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
        field = shift(field, int(round(centre - (ys * field).sum() / total)),
                       int(round(centre - (xs * field).sum() / total)))
    return np.clip(np.rint(field), 0, 255).astype(np.uint8)


def mnist_like(grey: np.ndarray, name: str = "image") -> np.ndarray:
    """The 28×28 MNIST-like digit of a grey picture in [0, 1] (either polarity); an ImageError
    when it holds none."""
    digit = _digit_from_channels(np.asarray(grey, dtype=np.float64), None)
    if digit.verdict == "empty":
        raise ImageError(f"{name}: no digit found (the image is blank or has too little contrast)")
    return digit.pixels


def _analysis_copy(values: np.ndarray) -> tuple[np.ndarray, int]:
    """`values` box-reduced so its longest side is at most `ANALYSIS_SIDE`, and the factor."""
    factor = max(1, math.ceil(max(values.shape) / ANALYSIS_SIDE))
    return (block_mean(values, factor) if factor > 1 else values), factor
