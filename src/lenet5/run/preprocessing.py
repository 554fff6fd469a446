"""How a run prepares an image for its model, as its files record it: checked, then applied."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import RunDirError
from ..files.json_fields import is_int, is_number, shown

DIGIT_SIDE = 28  # the images a run's model reads: a dataset's, or predict's, 28×28
MAX_PAD = 64


def check_preprocessing(metadata: dict, where: str) -> dict[str, Any]:
    """The metadata's `preprocessing`, checked field by field; a RunDirError naming `where` and
    the field for anything `preprocess` could not use (or would use to build a huge array)."""
    from ..data.preprocess import METHODS

    prep = metadata.get("preprocessing") if isinstance(metadata, dict) else None
    if not isinstance(prep, dict):
        raise RunDirError(f"{where}: metadata field 'preprocessing' must be an object, found {shown(prep)}")
    method = prep.get("method")
    if not isinstance(method, str) or method not in METHODS:
        raise RunDirError(f"{where}: metadata field 'preprocessing.method' must be one of "
                          f"{', '.join(METHODS)}, found {shown(method)}")
    pad = prep.get("pad")
    if not (is_int(pad) and 0 <= pad <= MAX_PAD):
        raise RunDirError(f"{where}: metadata field 'preprocessing.pad' must be an int in 0..{MAX_PAD}, "
                          f"found {shown(pad)}")
    for field in ("mean", "std"):
        value = prep.get(field)
        needed = method == "standardize"
        if (value is None and needed) or (value is not None and not (is_number(value) and math.isfinite(value))):
            raise RunDirError(f"{where}: metadata field 'preprocessing.{field}' must be a finite number"
                              f"{'' if needed else ' or null'}, found {shown(value)}")
    if method == "standardize" and not prep["std"] > 0:
        raise RunDirError(f"{where}: metadata field 'preprocessing.std' must be positive, found {prep['std']!r}")
    return prep


def preprocessing_metadata(model_name: str, mean: float, std: float) -> dict[str, Any]:
    """What a run's files say about its input: the model's preprocessing and the dataset's
    pixel statistics, so `preprocess_like` can prepare new images the same way."""
    from ..zoo.models import get_spec

    prep = get_spec(model_name).preprocessing
    return {"method": prep.method, "pad": prep.pad, "mean": mean, "std": std}


def preprocess_like(images_uint8: np.ndarray, metadata: dict) -> np.ndarray:
    """Raw uint8 images (N, H, W) prepared as the run's model was trained on them."""
    from ..data import preprocess

    prep = check_preprocessing(metadata, "run metadata")
    return preprocess(images_uint8, method=prep["method"], pad=prep["pad"],
                      mean=prep.get("mean"), std=prep.get("std"))
