"""Images for `predict`: a person's digit becomes MNIST-like; hostile files give a clear error."""

import numpy as np
import pytest

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from lenet5.image import ImageError, load_digit, mnist_like  # noqa: E402

from .test_cli import assert_one_line_error, lenet5, small_run  # noqa: E402,F401 (a fixture)


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


# Crafted images that are small on disk and large once decoded. Each is measured in a fresh
# process, whose peak resident size (ru_maxrss) says what decoding really took.

MEASURE = """
import json, resource, sys
import numpy
from PIL import Image
Image.init()
from lenet5.image import ImageError, load_digit
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    outcome = int(load_digit(sys.argv[1]).max())
except ImageError as error:
    outcome = str(error)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"grown_mib": grown / 1024, "outcome": outcome}))
"""


def measure_load(path):
    """What `load_digit(path)` gave (the brightest pixel, or the error) and how many MiB it grew by."""
    import json
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    return report["outcome"], report["grown_mib"]


def write_grey_png(path, width, height, row_for, bit_depth=8):
    """A grey PNG streamed row by row, so the test never holds the decoded image either."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(b"\x00" + row_for(y)) for y in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def test_a_large_png_of_one_colour_and_a_stroke_loads_in_bounded_memory(tmp_path):
    # 36 megapixels in about 40 KB. Worked on at full size in float64, it took gigabytes.
    side = 6000
    paper, stroke = bytes([235]) * side, bytes([235]) * 2700 + bytes([20]) * 600 + bytes([235]) * 2700
    path = tmp_path / "large.png"
    write_grey_png(path, side, side, lambda y: stroke if 1000 <= y < 5000 else paper)
    assert path.stat().st_size < 100_000
    brightest, grown_mib = measure_load(path)
    assert brightest > 200
    assert grown_mib < 34 + 40  # the 34 MiB raster itself, and little beside it


def test_a_large_jpeg_is_decoded_at_a_fraction_of_its_size(tmp_path):
    from PIL import ImageDraw

    image = Image.new("RGB", (8000, 5000), (235, 235, 235))
    ImageDraw.Draw(image).rectangle((3700, 1000, 4300, 4000), fill=(20, 20, 20))
    path = tmp_path / "large.jpg"
    image.save(path, quality=90)
    del image
    brightest, grown_mib = measure_load(path)
    assert brightest > 200
    assert grown_mib < 20  # decoded at 1/4 scale in grey: 2000x1250, under 3 MiB


def test_a_16_bit_image_beyond_the_decode_budget_is_refused_before_decoding(tmp_path):
    # 25 megapixels is within the pixel limit, but 16-bit samples converted to floats for
    # averaging take 6 bytes a pixel: 143 MiB.
    side = 5000
    path = tmp_path / "deep.png"
    write_grey_png(path, side, side, lambda y: bytes(2 * side), bit_depth=16)
    message, grown_mib = measure_load(path)
    assert isinstance(message, str) and "\n" not in message
    assert message.startswith(f"{path}: decoding 5000x5000 I;16") and "MiB, more than the 128 MiB allowed" in message
    assert grown_mib < 10  # refused from the header: nothing was decoded


@pytest.mark.parametrize("value", [np.inf, np.nan])
def test_inf_and_nan_survive_the_reduction_of_a_large_float_image_and_are_refused(tmp_path, value):
    pixels = np.zeros((40, 2100), np.float32)
    pixels[10:30, 1000:1010] = value
    path = tmp_path / "wide.tiff"
    Image.fromarray(pixels, mode="F").save(path)
    with pytest.raises(ImageError, match="wide.tiff: cannot read image.*must be finite"):
        load_digit(path)


def test_a_large_float_image_of_huge_finite_values_is_not_mistaken_for_inf(tmp_path):
    # Averaging four values near the float32 maximum overflows; the values are scaled first.
    pixels = np.full((60, 2100), 3e38, np.float32)
    pixels[10:50, 1000:1030] = -3e38
    path = tmp_path / "huge-values.tiff"
    Image.fromarray(pixels, mode="F").save(path)
    assert load_digit(path).max() > 200


def test_a_directory_and_a_fifo_are_named_for_what_they_are(tmp_path):
    import os

    with pytest.raises(ImageError, match="is a directory, expected an image file"):
        load_digit(tmp_path)
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match="pipe.png: is not a regular file"):
        load_digit(fifo)  # refused without opening it, which would block


def a_png_header(path, width, height):
    """A PNG that announces `width` x `height` pixels and holds none."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))


def test_pillow_warnings_are_silenced(tmp_path, recwarn):
    # 100 megapixels: Pillow warns of a decompression bomb on opening, then it is refused.
    path = tmp_path / "bomb.png"
    a_png_header(path, 10_000, 10_000)
    with pytest.raises(ImageError, match="bomb.png: 10000x10000 pixels is outside"):
        load_digit(path)
    assert not recwarn.list, [str(w.message) for w in recwarn.list]


def test_a_palette_image_with_transparency_in_bytes_is_composited_onto_paper(tmp_path, recwarn):
    image = Image.fromarray(draw_seven()).convert("P")
    path = tmp_path / "palette.png"
    image.save(path, transparency=bytes([255] * 128 + [0] * 128))
    assert load_digit(path).max() > 200
    assert not recwarn.list, [str(w.message) for w in recwarn.list]


def test_predict_says_one_line_for_a_warned_image_and_for_a_directory(small_run, tmp_path):
    run_dir, _ = small_run
    bomb = tmp_path / "bomb.png"
    a_png_header(bomb, 10_000, 10_000)
    assert_one_line_error(lenet5("predict", run_dir, bomb), f"{bomb}: 10000x10000 pixels is outside")
    assert_one_line_error(lenet5("predict", run_dir, tmp_path), f"{tmp_path}: is a directory")
