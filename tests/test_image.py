"""Images for `predict`: a person's digit becomes MNIST-like; hostile files give a clear error."""

import numpy as np
import pytest

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from lenet5.image import ImageError, load_digit, mnist_like  # noqa: E402


def draw_seven(size=(120, 90), ink=20, paper=235) -> np.ndarray:
    """A dark 7 on light paper, off-centre, as a phone photo of a note might show it."""
    canvas = np.full(size, paper, np.uint8)
    canvas[20:28, 15:70] = ink  # the bar
    for row in range(28, 100):  # the stem, slanting left
        column = 66 - (row - 28) // 2
        canvas[row, column - 4: column + 4] = ink
    return canvas


def test_a_dark_digit_on_light_paper_becomes_white_on_black_20x20_centred(tmp_path):
    path = tmp_path / "seven.png"
    Image.fromarray(draw_seven()).save(path)
    digit = load_digit(path)
    assert digit.shape == (28, 28) and digit.dtype == np.uint8
    assert digit[0].max() == 0 and digit[:, 0].max() == 0  # background black
    rows, cols = np.nonzero(digit > 30)
    assert rows.max() - rows.min() <= 21 and cols.max() - cols.min() <= 21  # fits the 20x20 box
    ys, xs = np.indices(digit.shape)
    mass = digit.astype(float)
    assert abs((ys * mass).sum() / mass.sum() - 13.5) <= 1 and abs((xs * mass).sum() / mass.sum() - 13.5) <= 1


def test_light_on_dark_is_not_inverted():
    light_on_dark = 255 - draw_seven()
    dark_on_light = draw_seven()
    assert np.array_equal(mnist_like(light_on_dark / 255.0), mnist_like(dark_on_light / 255.0))


@pytest.mark.parametrize("mode", ["RGBA", "P", "I;16", "RGB", "LA", "1", "CMYK"])
def test_every_pixel_format_gives_a_digit(tmp_path, mode):
    image = Image.fromarray(draw_seven()).convert("RGB")
    if mode == "RGBA":
        rgba = np.zeros((120, 90, 4), np.uint8)
        rgba[..., 3] = 255 - draw_seven()  # ink only in the alpha channel: transparent paper
        image = Image.fromarray(rgba, "RGBA")
    elif mode == "I;16":
        image = Image.fromarray((draw_seven().astype(np.uint16) * 257))
    else:
        image = image.convert(mode)
    path = tmp_path / f"digit-{mode.replace(';', '')}.{'jpg' if mode == 'CMYK' else 'png'}"
    image.save(path)
    digit = load_digit(path)
    assert digit.max() > 200 and digit[0].max() == 0


def test_an_animated_gif_uses_its_first_frame(tmp_path):
    frames = [Image.fromarray(draw_seven()), Image.fromarray(np.full((120, 90), 235, np.uint8))]
    path = tmp_path / "animated.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    assert load_digit(path).max() > 200


@pytest.mark.parametrize("pixels", [0, 255])
def test_blank_images_are_a_clear_error(tmp_path, pixels):
    path = tmp_path / "blank.png"
    Image.fromarray(np.full((50, 50), pixels, np.uint8)).save(path)
    with pytest.raises(ImageError, match="no digit found"):
        load_digit(path)


def test_empty_corrupt_and_missing_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    for name in ("empty.png", "corrupt.png"):
        with pytest.raises(ImageError, match="cannot read image"):
            load_digit(tmp_path / name)
    with pytest.raises(ImageError, match="no such file"):
        load_digit(tmp_path / "missing.png")


def test_huge_images_are_refused_from_the_header_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    # A valid PNG header announcing 100000 x 100000 pixels; decoding it would need 10 GB.
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    with pytest.raises(ImageError) as info:
        load_digit(path)
    assert "100000x100000" in str(info.value) or "decompression bomb" in str(info.value).lower()


def test_a_float_image_holding_inf_is_refused_in_one_line(tmp_path):
    from PIL import Image

    pixels = np.zeros((28, 28), np.float32)
    pixels[10:18, 12:16] = np.inf
    path = tmp_path / "inf.tiff"
    Image.fromarray(pixels, mode="F").save(path)
    with pytest.raises(ImageError, match="inf.tiff: cannot read image.*must be finite"):
        load_digit(path)
