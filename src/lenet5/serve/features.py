"""The feature maps of the first two convolutions (LeNet-5's C1 and C3), for the page to draw.

The reference model is run stage by stage (`Sequential.stages`) on the model's input, and
the output of each of its first two `Conv2D` layers is kept. Each map is sent as 0..255 grey
levels scaled between its own minimum and maximum (which come with it), so the page needs no
arithmetic to draw it.
"""

from __future__ import annotations

import numpy as np

from ..nn import Conv2D

TITLES = ("C1", "C3")  # the paper's names for the first and second convolution


def conv_feature_maps(model, x: np.ndarray) -> list[dict]:
    """The first two convolutions' outputs for one preprocessed image.

    Args:
        model: a reference `Sequential` in eval mode.
        x: its input for one image, (1, C, H, W).
    """
    if x.shape[0] != 1:
        raise ValueError(f"conv_feature_maps: expected one image, found a batch of {x.shape[0]}")
    found = []
    for name, layer, output in model.stages(x):
        if isinstance(layer, Conv2D):
            found.append((name, output[0]))
            if len(found) == len(TITLES):
                break  # the layers after C3 are not drawn
    return [_stage(title, name, maps) for title, (name, maps) in zip(TITLES, found)]


def _stage(title: str, name: str, maps: np.ndarray) -> dict:
    out = []
    for feature_map in maps.astype(np.float64):
        low, high = float(feature_map.min()), float(feature_map.max())
        span = high - low
        grey = np.zeros(feature_map.shape, np.uint8) if span == 0 else \
            np.rint((feature_map - low) * (255.0 / span)).astype(np.uint8)
        out.append({"min": low, "max": high, "pixels": grey.tolist()})
    return {"title": title, "layer": name, "shape": list(maps.shape), "maps": out}
