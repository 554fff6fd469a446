"""A person's picture of a digit, made into an MNIST-like 28×28 image.

    decode.py      a file, bytes, a PIL image or an array: decoded small and upright, grey and alpha
    digit.py       from grey levels to one fitted, centred digit and a verdict on it
    operations.py  the small array operations that needs: filters, resize, blobs and their boxes
"""

from .decode import DECODE_BUDGET, ImageError, image_extensions
from .digit import DIGIT_SIDE, Digit, load_digit, mnist_like, prepare_digit

__all__ = ["DECODE_BUDGET", "DIGIT_SIDE", "Digit", "ImageError", "image_extensions", "load_digit", "mnist_like",
           "prepare_digit"]
