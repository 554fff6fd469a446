"""The NumPy int8 path: its pieces exactly, and the whole against onnxruntime's int8 model."""

from __future__ import annotations

import numpy as np
import pytest

from lenet5.export.int8 import WEIGHT_MAX, Int8Model, QuantParams, integer_product, per_channel_weights
from lenet5.export.ops import inference_ops
from lenet5.zoo.models import MODELS

from .conftest import HAND_BUILT, hand_built, metadata_for, random_model, synthetic_digits


@pytest.mark.parametrize("low, high", [(-3.0, 5.0), (0.0, 2.5), (-1.0, -0.25), (0.5, 7.0)])
def test_activation_grid_holds_zero_exactly_and_covers_the_range(low, high):
    params = QuantParams.from_range(low, high)
    assert params.dequantize(np.array([params.zero_point], np.int8))[0] == 0  # zero padding is exact
    values = np.linspace(low, high, 1001, dtype=np.float32)
    restored = params.dequantize(params.quantize(values))
    assert np.abs(restored - values).max() <= params.scale * 0.5001
    assert params.scale == pytest.approx((max(high, 0) - min(low, 0)) / 255)


def test_weights_are_symmetric_per_output_channel():
    rng = np.random.default_rng(0)
    weight = rng.normal(0, 1, (8, 3, 5, 5)).astype(np.float32) * np.arange(1, 9)[:, None, None, None]
    codes, scales = per_channel_weights(weight)
    assert codes.dtype == np.int8 and scales.shape == (8,)
    assert (np.abs(codes).reshape(8, -1).max(axis=1) == WEIGHT_MAX).all()  # each channel's peak is ±64 (7 bits)
    error = np.abs(codes * scales[:, None, None, None] - weight)
    assert (error <= scales[:, None, None, None] * 0.5001).all()


def test_integer_products_are_exact():
    rng = np.random.default_rng(1)
    weights = rng.integers(-127, 128, (16, 3136), dtype=np.int64)
    centred = rng.integers(-255, 256, (3136, 50), dtype=np.int64)
    assert np.array_equal(integer_product(weights.astype(np.int8), centred.astype(np.int16)), weights @ centred)


def int8_logits_both_ways(model, metadata) -> tuple[np.ndarray, np.ndarray, float]:
    """(onnxruntime's int8 logits, the NumPy int8 path's, the step of the NumPy path's
    output grid) on synthetic digits, both calibrated on the same 300 others."""
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    from lenet5.export.onnx_graph import to_onnx
    from lenet5.export.quantize import quantize_int8

    calibration = synthetic_digits(300, seed=10)[:, None].astype(np.float32)
    images = synthetic_digits(300, seed=11)[:, None].astype(np.float32)
    session = ort.InferenceSession(quantize_int8(to_onnx(model, metadata), calibration))
    theirs = session.run(None, {"pixels": images})[0]
    int8 = Int8Model.calibrate(inference_ops(model, metadata["preprocessing"]), calibration)
    last = int8.layers[-1]
    return theirs, int8.predict_logits(images), (last.out or last.dense.out).scale  # RBF: its bracket's grid


@pytest.mark.parametrize("name", list(MODELS))
def test_numpy_int8_follows_onnxruntime_int8_on_random_weights(name):
    """Random weights give near-ties, so the argmax may differ on a few images; the logits
    must not: within a few steps of the output grid on every image."""
    theirs, ours, step = int8_logits_both_ways(random_model(name), metadata_for(name))
    assert np.abs(ours - theirs).max() <= 5 * step
    assert (ours.argmax(axis=1) == theirs.argmax(axis=1)).mean() >= 0.95


@pytest.mark.parametrize("kind", HAND_BUILT)
def test_numpy_int8_follows_onnxruntime_int8_beyond_the_zoo(kind):
    """Strides and padded pools; an unfolded BatchNorm and Softmax, which the NumPy path runs
    in float between int8 grids (onnxruntime differs more there: within 10 steps)."""
    metadata = {"architecture": kind, "preprocessing": {"method": "scale", "pad": 0}}
    theirs, ours, step = int8_logits_both_ways(hand_built(kind), metadata)
    assert np.abs(ours - theirs).max() <= (5 if kind.startswith("strided") else 10) * step
    assert (ours.argmax(axis=1) == theirs.argmax(axis=1)).mean() >= 0.95


def test_int8_predictions_accept_images_with_or_without_the_channel_axis():
    model, metadata = random_model("relu"), metadata_for("relu")
    images = synthetic_digits(20, seed=12)
    int8 = Int8Model.calibrate(inference_ops(model, metadata["preprocessing"]), images)
    assert np.array_equal(int8.predict(images), int8.predict(images[:, None]))
    assert int8.predict_logits(images, batch_size=7).shape == (20, 10)
