"""Shipping a trained model: an ONNX graph for onnxruntime, and int8 quantization.

    ops.py         the model as inference operations, BatchNorm folded, preprocessing first
    onnx_graph.py  those operations as an ONNX graph (onnx.helper; the `export` extra)
    quantize.py    static int8 quantization of that graph with onnxruntime's tooling
    int8.py        the same int8 arithmetic in NumPy, layer by layer, to read
    ship.py        a run directory to an .onnx file, written atomically
    (`lenet5 export RUN_DIR [--int8] [-o FILE]` is lenet5/cli/export.py)

Only `ops.py` and `int8.py` are imported here: they need NumPy alone. The others import
onnx or onnxruntime inside their functions.
"""

from .int8 import Int8Model
from .ops import ExportError, inference_ops

__all__ = ["ExportError", "Int8Model", "inference_ops"]
