"""From uint8 28×28 images to the float32 NCHW arrays a model expects."""

from __future__ import annotations

import numpy as np

METHODS = ("scale", "standardize", "lecun")
LECUN_BACKGROUND, LECUN_INK = -0.1, 1.175  # LeCun et al. 1998: mean about 0, variance about 1


def pixel_table(method: str = "scale", mean: float | None = None, std: float | None = None) -> np.ndarray:
    """The float32 value of each of the 256 pixel values under `method`, computed in float64
    so that, for instance, "lecun" maps 0 to exactly float32(-0.1) and 255 to float32(1.175)."""
    if method not in METHODS:
        raise ValueError(f"preprocess: unknown method {method!r}; known: {', '.join(METHODS)}")
    x = np.arange(256, dtype=np.float64) / 255
    if method == "standardize":
        if mean is None or std is None or not std > 0:
            raise ValueError(f"preprocess: standardize needs the dataset's mean and a positive std, "
                             f"found mean={mean!r}, std={std!r}")
        values = (x - mean) / std
    elif method == "lecun":
        values = LECUN_BACKGROUND + x * (LECUN_INK - LECUN_BACKGROUND)
    else:
        values = x
    return values.astype(np.float32)


def preprocess(images_uint8: np.ndarray, method: str = "scale", pad: int = 0, mean: float | None = None,
               std: float | None = None) -> np.ndarray:
    """Normalise and pad images for a model.

    Args:
        images_uint8: (N, H, W) uint8 (a single (H, W) image is taken as N = 1).
        method: "scale" gives x/255 in [0, 1]; "standardize" gives (x/255 − mean) / std;
            "lecun" gives the 1998 paper's x/255·1.275 − 0.1: background −0.1, full ink 1.175.
        pad: pixels added on each side, filled with the transformed value of a background (0)
            pixel, so padding looks like paper, not like 0.

    Shape: (N, H, W) -> (N, 1, H + 2·pad, W + 2·pad), float32.
    """
    images = np.asarray(images_uint8)
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3:
        raise ValueError(f"preprocess: expected images of shape (N, H, W), found {images.shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"preprocess: expected uint8 pixels (0..255), found dtype {images.dtype}")
    if not (isinstance(pad, (int, np.integer)) and not isinstance(pad, bool) and pad >= 0):
        raise ValueError(f"preprocess: pad must be an int >= 0, found {pad!r}")
    table = pixel_table(method, mean, std)
    count, height, width = images.shape
    out = np.empty((count, 1, height + 2 * pad, width + 2 * pad), dtype=np.float32)
    if pad:
        out.fill(table[0])
    out[:, 0, pad: pad + height, pad: pad + width] = table[images]  # one gather through 256 values
    return out
