"""Draw docs/images/preprocessing.png: what `lenet5.image.prepare_digit` does to real pictures.

Two pictures are made here, from nothing but Pillow's drawing: a phone photo of a pencilled
digit (grey blurred strokes, a shadow over half the sheet, stored sideways with an EXIF
orientation tag) and a white digit on a web drawing pad's transparent canvas. Each is shown
as stored, then after each step. Usage: python scripts/draw_preprocessing.py [OUT.png]
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np

STROKES = [[(60, 40), (30, 150), (130, 150)], [(110, 70), (105, 230)]]  # a 4, in two strokes


def drawn_digit(side=260, width=16):
    """White strokes on black, antialiased by drawing at 4× and shrinking."""
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (side * 4, side * 4), 0)
    draw = ImageDraw.Draw(canvas)
    for stroke in STROKES:
        points = [(x * 4 * side / 260, y * 4 * side / 260) for x, y in stroke]
        draw.line(points, fill=255, width=width * 4, joint="curve")
        for x, y in points[:1] + points[-1:]:
            draw.ellipse((x - width * 2, y - width * 2, x + width * 2, y + width * 2), fill=255)
    return canvas.resize((side, side), Image.Resampling.LANCZOS)


def phone_photo() -> bytes:
    """A pencilled 4 photographed under a shadow, stored sideways as a JPEG with EXIF tag 6."""
    from PIL import Image, ImageFilter

    strokes = np.asarray(drawn_digit().filter(ImageFilter.GaussianBlur(5)), dtype=np.float64) / 255
    rng = np.random.default_rng(0)
    paper = 0.9 * (1 - 0.4 * strokes) + rng.normal(0, 0.015, strokes.shape)
    width = paper.shape[1]
    light = 1 - 0.65 / (1 + np.exp(-(np.arange(width) - width * 0.55) / (width * 0.05)))
    photo = Image.fromarray(np.clip(paper * light * 255, 0, 255).astype(np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    stored = io.BytesIO()
    photo.transpose(Image.Transpose.ROTATE_90).save(stored, "JPEG", exif=exif, quality=90)
    return stored.getvalue()


def drawing_pad() -> bytes:
    """A white 4 on a transparent canvas, as a web drawing pad exports it."""
    from PIL import Image

    image = Image.new("RGBA", (260, 260), (255, 255, 255, 0))
    image.putalpha(drawn_digit(width=12))
    stored = io.BytesIO()
    image.save(stored, "PNG")
    return stored.getvalue()


def as_shown(data: bytes) -> np.ndarray:
    """A picture as stored (no EXIF turn), transparency over a grey checkerboard."""
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGBA")
    rows, columns = np.indices(image.size[::-1]) // 20
    squares = (rows + columns) % 2
    board = Image.fromarray((squares * 40 + 170).astype(np.uint8)).convert("RGBA")
    return np.asarray(Image.alpha_composite(board, image).convert("RGB"))


def main(argv: list[str]) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lenet5.files.writing import atomic_write
    from lenet5.image import prepare_digit

    out = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent / "docs" / "images" / "preprocessing.png"
    rows = [("phone photo: pencil, shadow,\nstored sideways (EXIF)", phone_photo()),
            ("drawing pad: white ink\non a transparent canvas", drawing_pad())]
    titles = ["as stored", "1. upright, ink from alpha", "2. background removed", "3. contrast",
              "4. cropped, 20×20, centred: 28×28"]
    figure, axes = plt.subplots(len(rows), len(titles), figsize=(13, 6.2))
    for row, (label, data) in enumerate(rows):
        steps: dict = {}
        digit = prepare_digit(data, steps=steps)
        pictures = [as_shown(data), steps["upright"], 1 - steps["background removed"], 1 - steps["contrast"],
                    digit.pixels]
        for column, picture in enumerate(pictures):
            axis = axes[row, column]
            grey = picture.ndim == 2
            axis.imshow(picture, cmap="gray" if grey else None, vmin=0, vmax=255 if picture.dtype == np.uint8 else 1,
                        interpolation="nearest" if picture.shape[0] <= 28 else "antialiased")
            axis.set_xticks([]), axis.set_yticks([])
            if row == 0:
                axis.set_title(titles[column], fontsize=10)
        axes[row, 0].set_ylabel(label, fontsize=10)
        axes[row, -1].set_xlabel(f"verdict: {digit.verdict}, confidence {digit.confidence:.2f}", fontsize=9)
    figure.suptitle("lenet5.image.prepare_digit: from a real picture to an MNIST-like digit", fontsize=12)
    figure.tight_layout()
    with atomic_write(out) as file:
        figure.savefig(file, format="png", dpi=90)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
