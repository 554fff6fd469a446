"""Static int8 quantization of an exported graph with onnxruntime's own tooling.

    quant_pre_process  shape inference and graph clean-up, as onnxruntime recommends first
    quantize_static    QDQ format: QuantizeLinear/DequantizeLinear pairs around each quantized
                       operator; weights int8 symmetric per output channel in 7 bits
                       (`reduce_range`: see `int8.WEIGHT_MAX`), activations int8 per tensor
                       with min/max ranges from calibration images

The calibration images are raw pixels, like the graph's input: a few hundred training
images, drawn with a fixed seed so the same run always gives the same int8 model.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from .onnx_graph import INPUT, require_onnx
from .ops import ExportError

CALIBRATION_IMAGES = 300
CALIBRATION_BATCH = 50


def require_onnxruntime():
    """The `onnxruntime` module, or a one-line error naming the extra that provides it."""
    try:
        import onnxruntime
    except ModuleNotFoundError:
        raise ExportError("int8 quantization needs the 'export' extra: pip install 'lenet5[export]'") from None
    return onnxruntime


def calibration_images(train_images: np.ndarray, count: int = CALIBRATION_IMAGES, seed: int = 0) -> np.ndarray:
    """`count` training images (N, 28, 28) uint8 drawn without replacement, as float32 pixels
    (count, 1, 28, 28), the graph's input."""
    if len(train_images) == 0:
        raise ExportError("calibration needs training images; the dataset has none")
    chosen = np.random.default_rng(seed).choice(len(train_images), size=min(count, len(train_images)), replace=False)
    return np.asarray(train_images)[np.sort(chosen)][:, None].astype(np.float32)


def quantize_int8(float_model, calibration_pixels: np.ndarray) -> bytes:
    """The int8 (QDQ) model of `float_model` (an `onnx.ModelProto` from `to_onnx`), serialized.

    Its `metadata_props` are the float model's, with `lenet5.precision` set to "int8".
    """
    onnx = require_onnx()
    require_onnxruntime()
    from onnxruntime.quantization import (
        CalibrationDataReader, QuantFormat, QuantType, quant_pre_process, quantize_static,
    )

    class PixelBatches(CalibrationDataReader):
        """Feeds the calibration images to the quantizer, CALIBRATION_BATCH at a time."""

        def __init__(self) -> None:
            count = max(1, len(calibration_pixels) // CALIBRATION_BATCH)
            self.batches = iter(np.array_split(calibration_pixels, count))

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {INPUT: batch}

    # The tools read and write files: they work in a private folder, and only the finished
    # bytes leave it (the caller writes them atomically).
    with tempfile.TemporaryDirectory(prefix="lenet5-quantize-") as folder:
        folder = Path(folder)
        onnx.save(float_model, folder / "float.onnx")
        try:
            quant_pre_process(str(folder / "float.onnx"), str(folder / "prepared.onnx"))
            quantize_static(str(folder / "prepared.onnx"), str(folder / "int8.onnx"), PixelBatches(),
                            quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QInt8,
                            weight_type=QuantType.QInt8, reduce_range=True)  # 7-bit weights: int8.WEIGHT_MAX
        except Exception as error:  # the tools raise many kinds; none should reach the user as a traceback
            raise ExportError(f"onnxruntime could not quantize the model: {type(error).__name__}: "
                              f"{' '.join(str(error).split())[:300]}") from None
        quantized = onnx.load(folder / "int8.onnx")
    props = {prop.key: prop.value for prop in float_model.metadata_props}
    props["lenet5.precision"] = "int8"
    del quantized.metadata_props[:]
    onnx.helper.set_model_props(quantized, props)
    quantized.doc_string = float_model.doc_string
    return quantized.SerializeToString()
