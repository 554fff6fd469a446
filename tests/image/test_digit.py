"""Images for `predict`: a person's digit becomes MNIST-like; hostile files give a clear error."""

import numpy as np
import pytest

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from lenet5.image import Digit, ImageError, load_digit, mnist_like, prepare_digit  # noqa: E402

from ..cli.test_main import small_run  # noqa: E402,F401 (a fixture)
from ..helpers.commands import assert_one_line_error, lenet5  # noqa: E402


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


def a_png_header(path, width, height, colour_type=2):
    """A PNG that announces `width` x `height` pixels (RGB unless told) and holds none."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))


def test_pillow_warnings_are_silenced(tmp_path, recwarn):
    # 100 megapixels: Pillow warns of a decompression bomb on opening, then its 381 MiB of
    # RGB pixels (4 bytes each in Pillow) are refused from the header.
    path = tmp_path / "bomb.png"
    a_png_header(path, 10_000, 10_000)
    with pytest.raises(ImageError, match="bomb.png: decoding 10000x10000 RGB pixels needs 381 MiB"):
        load_digit(path)
    assert not recwarn.list, [str(w.message) for w in recwarn.list]


def test_a_palette_image_with_transparency_in_bytes_is_composited_onto_paper(tmp_path, recwarn):
    image = Image.fromarray(draw_seven()).convert("P")
    path = tmp_path / "palette.png"
    image.save(path, transparency=bytes([255] * 128 + [0] * 128))
    assert load_digit(path).max() > 200
    assert not recwarn.list, [str(w.message) for w in recwarn.list]


def test_predict_says_one_line_for_a_warned_image_alone_or_in_a_directory(small_run, tmp_path):
    run_dir, _ = small_run
    bomb = tmp_path / "bomb.png"
    a_png_header(bomb, 10_000, 10_000)
    assert_one_line_error(lenet5("predict", run_dir, bomb), f"{bomb}: decoding 10000x10000 RGB pixels")
    assert_one_line_error(lenet5("predict", run_dir, tmp_path), f"{bomb}: decoding 10000x10000 RGB pixels")


# -- real people's pictures, generated: each kind of trouble the preprocessing must undo ------

def as_scan(digit: np.ndarray, side=224, ink=0.45, blur=5.0, paper=0.92, noise=0.02, seed=0) -> np.ndarray:
    """An MNIST digit (white on black, 28×28) as a blurred scan with grey strokes: dark ink
    reaching only `ink` of the way from paper to black, on slightly noisy paper, uint8."""
    from PIL import ImageFilter

    big = Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC)
    big = big.filter(ImageFilter.GaussianBlur(blur))
    strokes = np.asarray(big, dtype=np.float64) / 255.0
    rng = np.random.default_rng(seed)
    grey = paper * (1.0 - ink * strokes) + rng.normal(0.0, noise, strokes.shape)
    return np.clip(grey * 255.0, 0, 255).astype(np.uint8)


def with_shadow(grey: np.ndarray, darkest=0.35) -> np.ndarray:
    """`grey` under a shadow: full light on the left, `darkest` on the right, with a soft edge
    across the middle, as a hand or a phone casts over a sheet."""
    width = grey.shape[1]
    ramp = 1.0 / (1.0 + np.exp(-(np.arange(width) - width * 0.45) / (width * 0.04)))
    light = 1.0 - (1.0 - darkest) * ramp
    return np.clip(grey * light[None, :], 0, 255).astype(np.uint8)


def on_transparent(digit: np.ndarray, colour=(255, 255, 255), side=280) -> Image.Image:
    """An MNIST digit as a web drawing pad exports it: `colour` ink whose coverage is in the
    alpha channel, on a fully transparent canvas."""
    alpha = Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC)
    image = Image.new("RGBA", (side, side), colour + (0,))
    image.putalpha(alpha)
    return image


def on_lined_paper(grey: np.ndarray, spacing=40, darkness=0.4) -> np.ndarray:
    """`grey` on ruled paper: lines two pixels thick every `spacing` rows, across the sheet."""
    lined = grey.astype(np.float64)
    for row in range(0, lined.shape[0], spacing):
        lined[row: row + 2] *= 1.0 - darkness
    return lined.astype(np.uint8)


def in_hairline(digit: np.ndarray, side=400) -> np.ndarray:
    """An MNIST digit redrawn with a fine pen on a big sheet: strokes a fifth as wide."""
    big = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC), np.float64) / 255.0
    return np.where(big > 0.97, 25, 230).astype(np.uint8)


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Two MNIST digits a digit's width apart, dark on light: two objects, not one."""
    canvas = np.zeros((28, 84), np.uint8)
    canvas[:, 0:28], canvas[:, 56:84] = left, right
    return 255 - canvas


def clean_seven() -> np.ndarray:
    """The seven, as MNIST would hold it: white on black, 28×28."""
    return prepare_digit(draw_seven()).pixels


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two digits' pixels: 1 for the same picture at any brightness."""
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_a_clean_drawing_is_one_digit_with_full_confidence():
    digit = prepare_digit(draw_seven())
    assert isinstance(digit, Digit) and digit.pixels.shape == (28, 28) and digit.pixels.dtype == np.uint8
    assert digit.verdict == "one digit" and digit.confidence > 0.9


def test_blurred_grey_strokes_reach_full_ink_like_mnist():
    scan = as_scan(clean_seven(), ink=0.3, blur=6)
    assert scan.min() > 100  # the darkest stroke is still a light grey
    digit = prepare_digit(scan)
    assert digit.verdict == "one digit"
    # A solid core, not a grey smear (measured: 23 of the clean seven's 34; before this
    # preprocessing, none, the brightest 201, and a similarity of 0.25).
    assert (digit.pixels >= 250).sum() >= 15
    assert similarity(digit.pixels, clean_seven()) > 0.75


def test_an_exif_rotated_jpeg_is_turned_upright(tmp_path):
    upright = Image.fromarray(draw_seven(size=(240, 180)))
    sideways = upright.transpose(Image.Transpose.ROTATE_90)  # as a phone held sideways stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    path = tmp_path / "sideways.jpg"
    sideways.save(path, exif=exif, quality=95)
    digit = prepare_digit(path)
    assert similarity(digit.pixels, clean_seven()) > 0.9
    unturned = prepare_digit(np.asarray(sideways))
    assert similarity(unturned.pixels, clean_seven()) < 0.8  # the check can tell


@pytest.mark.parametrize("colour", [(255, 255, 255), (0, 0, 0), (30, 90, 200)])
def test_any_colour_on_a_transparent_canvas_is_read_from_the_alpha_channel(tmp_path, colour):
    path = tmp_path / "pad.png"
    on_transparent(clean_seven(), colour).save(path)
    digit = prepare_digit(path)
    assert digit.verdict == "one digit"
    assert similarity(digit.pixels, clean_seven()) > 0.9


def test_dark_ink_on_a_partly_transparent_sheet_keeps_its_colour():
    # A white sheet with a dark seven, in a transparent margin: the colour carries the ink.
    rgba = np.zeros((160, 130, 4), np.uint8)
    rgba[20:140, 20:110, :3] = draw_seven()[..., None]
    rgba[20:140, 20:110, 3] = 255
    digit = prepare_digit(rgba)
    assert digit.verdict == "one digit" and similarity(digit.pixels, clean_seven()) > 0.9


def test_a_48_megapixel_photo_is_accepted_in_bounded_memory(tmp_path):
    from PIL import ImageDraw

    photo = Image.new("L", (8000, 6000), 225)
    draw = ImageDraw.Draw(photo)
    draw.rectangle((3000, 1500, 5000, 1800), fill=30)  # a seven's bar
    draw.polygon([(4700, 1800), (5000, 1800), (3900, 4800), (3600, 4800)], fill=30)  # its stem
    path = tmp_path / "photo.jpg"
    photo.save(path, quality=85)
    del photo, draw
    brightest, grown_mib = measure_load(path)
    assert brightest == 255
    assert grown_mib < 20  # decoded at 1/8 scale: 1000x750


def test_a_shadow_across_the_paper_is_not_taken_for_ink():
    shaded = with_shadow(as_scan(clean_seven(), ink=0.7, blur=2), darkest=0.3)
    digit = prepare_digit(shaded)
    assert digit.verdict == "one digit"
    assert similarity(digit.pixels, clean_seven()) > 0.85


def test_the_lines_of_ruled_paper_are_not_ink():
    digit = prepare_digit(on_lined_paper(as_scan(clean_seven(), ink=0.7, blur=2)))
    assert digit.verdict == "one digit"
    rows, columns = np.nonzero(digit.pixels > 30)
    assert np.ptp(columns) <= 20 and np.ptp(rows) <= 21  # lines across the sheet would widen the box
    assert similarity(digit.pixels, clean_seven()) > 0.7


def test_a_fine_pens_strokes_are_widened_to_mnists():
    seven = clean_seven()
    digit = prepare_digit(in_hairline(seven))
    assert digit.verdict == "one digit"
    # Measured: 91 pixels above half ink (the clean seven has 64; unwidened, 23).
    assert (digit.pixels > 128).sum() >= 0.8 * (seven > 128).sum()


def test_an_empty_page_is_a_verdict_not_an_error():
    rng = np.random.default_rng(0)
    page = with_shadow(np.clip(rng.normal(230, 4, (300, 240)), 0, 255).astype(np.uint8))
    digit = prepare_digit(page)
    assert digit.verdict == "empty" and digit.confidence == 0.0 and digit.pixels.max() == 0


def test_two_digits_side_by_side_are_several_blobs():
    seven = clean_seven()
    digit = prepare_digit(side_by_side(seven, seven))
    assert digit.verdict == "several blobs" and digit.confidence < 0.5
    assert similarity(digit.pixels, seven) > 0.9  # the largest is what the network sees


def test_a_seven_with_a_speck_of_dust_is_still_one_digit():
    page = draw_seven(size=(200, 200))
    page[180:183, 10:13] = 20
    digit = prepare_digit(page)
    assert digit.verdict == "one digit" and similarity(digit.pixels, clean_seven()) > 0.9


def test_near_invisible_ink_is_low_contrast_but_still_read():
    faint = as_scan(clean_seven(), ink=0.07, blur=1, noise=0.004)
    digit = prepare_digit(faint)
    assert digit.verdict == "low contrast" and digit.confidence < 0.5
    assert similarity(digit.pixels, clean_seven()) > 0.8


def test_mnist_like_inputs_come_out_close_to_themselves():
    seven = clean_seven()
    assert prepare_digit(seven).pixels is not seven and np.array_equal(prepare_digit(seven).pixels, seven)
    again = prepare_digit(seven / 255.0).pixels  # a float array goes through every step
    assert np.abs(again.astype(int) - seven).mean() < 2 and similarity(again, seven) > 0.98


@pytest.mark.slow
def test_mnist_digits_come_out_close_to_themselves(mnist_dir):
    from lenet5.data import load_dataset

    images = load_dataset("mnist", data_dir=mnist_dir).test_images[:500]
    prepared = np.stack([prepare_digit(image / 255.0).pixels for image in images])
    difference = np.abs(prepared.astype(int) - images)
    assert difference.mean() < 1.5  # 0.43 measured over the whole test set
    assert np.median(difference.max(axis=(1, 2))) <= 8


def test_every_kind_of_source_gives_the_same_digit(tmp_path):
    path = tmp_path / "seven.png"
    Image.fromarray(draw_seven()).save(path)
    expected = prepare_digit(path).pixels
    for source in (str(path), path.read_bytes(), Image.open(path), draw_seven(), draw_seven()[..., None],
                   np.repeat(draw_seven()[..., None], 3, axis=2), draw_seven().astype(np.uint16) * 257,
                   draw_seven() / 255.0):
        assert np.array_equal(prepare_digit(source).pixels, expected), type(source)


@pytest.mark.parametrize("source, fragment", [
    (np.zeros((3, 4, 5)), "array of shape (3, 4, 5): expected (H, W) grey or (H, W, C) with C of 1 to 4"),
    (np.zeros((0, 4)), "array of shape (0, 4)"),
    (np.array([[np.nan, 1.0]]), "pixel values must be finite"),
    (np.array([["a"]]), "array of dtype <U1: expected integer, boolean or float pixels"),
    (b"not an image", "image bytes: cannot read image"),
    (12, "cannot read a digit from a int; expected a path, the bytes of an image file"),
])
def test_bad_sources_are_one_line_errors(source, fragment):
    with pytest.raises(ImageError) as info:
        prepare_digit(source)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def peak_bytes(function, *args):
    """What `function(*args)` allocates at its peak, NumPy's buffers included (NumPy reports
    them to tracemalloc); its arguments, made before, are not counted."""
    import tracemalloc

    tracemalloc.start()
    try:
        function(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_large_integer_array_is_classified_within_the_budget(tmp_path):
    """lenet5.load(run).predict(array) budgets what it works with, not its input: a 61 MiB
    uint8 array (8 bytes a pixel as one float copy) is converted a tile at a time."""
    from lenet5 import load
    from lenet5.image import DECODE_BUDGET

    from ..run.test_classifier import untrained_run

    classifier = load(untrained_run(tmp_path / "run"))
    array = np.zeros((8000, 8000), np.uint8)
    array[2000:6000, 3800:4200] = 255  # a one
    assert peak_bytes(classifier.predict, array) < DECODE_BUDGET / 2
    assert classifier.predict(array).digit.verdict == "one digit"


def test_a_large_float_array_beyond_the_old_input_limit_is_reduced_within_the_budget():
    from lenet5.image import DECODE_BUDGET

    huge = np.lib.stride_tricks.as_strided(np.zeros(1, np.float64), shape=(5000, 5000), strides=(0, 0))
    assert peak_bytes(prepare_digit, huge) < DECODE_BUDGET / 2  # 191 MiB of pixels
    assert prepare_digit(huge).verdict == "empty"


def test_an_array_whose_working_set_exceeds_the_budget_is_refused_before_it_is_converted():
    """3,000 rows of 3 million pixels: reduced 2,930 times, each block alone is 66 MiB of floats."""
    huge = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), shape=(3000, 3_000_000), strides=(0, 0))

    def refused():
        with pytest.raises(ImageError, match="array of shape \\(3000, 3000000\\): reducing it to 1024 pixels a "
                                             "side needs 197 MiB, more than the 128 MiB allowed; scale it down"):
            prepare_digit(huge)

    assert peak_bytes(refused) < 2**20
