"""From uint8 28×28 images to the float32 NCHW arrays a model expects."""

from __future__ import annotations

import numpy as np

METHODS = ("scale", "standardize", "lecun")


def preprocess(images: np.ndarray, method: str = "scale", pad: int = 0, mean: float | None = None,
               std: float | None = None) -> np.ndarray:
    """(N, H, W) uint8 -> (N, 1, H + 2·pad, W + 2·pad) float32.

    Methods: "scale" gives [0, 1]; "standardize" gives (x/255 − mean) / std; "lecun" gives
    the 1998 paper's range, background −0.1 and full ink 1.175 (mean ≈ 0, variance ≈ 1).
    Padding is filled with the transformed background value, so it looks like paper, not 0.
    """
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3:
        raise ValueError(f"preprocess: expected images of shape (N, H, W), found {images.shape}")
    if method not in METHODS:
        raise ValueError(f"preprocess: unknown method {method!r}; known: {', '.join(METHODS)}")
    if method == "standardize" and (mean is None or not std):
        raise ValueError("preprocess: standardize needs the dataset's mean and std")
    if not (isinstance(pad, (int, np.integer)) and pad >= 0):
        raise ValueError(f"preprocess: pad must be an int >= 0, found {pad!r}")
    scaled = images.astype(np.float32) * np.float32(1 / 255)
    if method == "standardize":
        scale, shift = 1 / std, -mean / std
    elif method == "lecun":
        scale, shift = 1.275, -0.1
    else:
        scale, shift = 1.0, 0.0
    scaled *= np.float32(scale)
    scaled += np.float32(shift)
    count, height, width = scaled.shape
    out = np.full((count, 1, height + 2 * pad, width + 2 * pad), np.float32(shift), dtype=np.float32)
    out[:, 0, pad: pad + height, pad: pad + width] = scaled
    return out
