"""The ONNX graph of a trained model, built with `onnx.helper` (the `export` extra).

    pixels (N, 1, 28, 28) float32, 0..255  ->  [Pad] -> Mul -> Add -> layers ->  logits (N, 10)

One node (or a few) per operation of `ops.inference_ops`; N is symbolic ("batch"), so any
batch size runs. The opset and IR version are pinned: opset 17 has every operator used here
with its attributes where they were (ReduceSumSquare's axes move to an input in 18), and IR
version 8 is the one that opset was released with (the `export` extra asks for onnxruntime
1.18 or later; the tests run on 1.32).
"""

from __future__ import annotations

import json

import numpy as np

from .ops import (
    Affine, BatchNorm, Conv, Elementwise, ExportError, Flatten, Gemm, Pad, Pool, Rbf, Softmax, inference_ops
)

OPSET = 17
IR_VERSION = 8
INPUT, OUTPUT = "pixels", "logits"


def require_onnx():
    """The `onnx` module, or a one-line error naming the extra that provides it."""
    try:
        import onnx
    except ModuleNotFoundError:
        raise ExportError("ONNX export needs the 'export' extra: pip install 'lenet5[export]'") from None
    return onnx


class _GraphBuilder:
    """Nodes and initializers added in order, each tensor named after the op that makes it."""

    def __init__(self, onnx) -> None:
        self.onnx = onnx
        self.nodes, self.initializers = [], []
        self.current = INPUT
        self.count = 0

    def constant(self, name: str, value) -> str:
        array = np.asarray(value)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def add(self, op_type: str, inputs: list[str], output: str | None = None, **attributes) -> str:
        """One node reading the current tensor (and `inputs`); its output becomes current."""
        self.count += 1
        output = output or f"{op_type.lower()}{self.count}"
        self.nodes.append(self.onnx.helper.make_node(op_type, [self.current, *inputs], [output],
                                                     name=f"{op_type}_{self.count}", **attributes))
        self.current = output
        return output

    def prefix(self) -> str:
        return f"op{self.count + 1}"


def _pads(padding) -> list[int]:
    ph, pw = padding
    return [ph, pw, ph, pw]  # ONNX: all begins (H, W), then all ends


def _emit(graph: _GraphBuilder, op) -> None:
    """The node(s) computing `op` on the current tensor."""
    name = graph.prefix()
    if isinstance(op, Pad):
        pads = graph.constant(f"{name}.pads", np.array([0, 0, op.pad, op.pad, 0, 0, op.pad, op.pad], np.int64))
        graph.add("Pad", [pads], mode="constant")  # raw pixels: zero is the background
    elif isinstance(op, Affine):
        graph.add("Mul", [graph.constant(f"{name}.scale", np.float32(op.scale))])
        graph.add("Add", [graph.constant(f"{name}.offset", np.float32(op.offset))])
    elif isinstance(op, Conv):
        weight, bias = graph.constant(f"{name}.weight", op.weight), graph.constant(f"{name}.bias", op.bias)
        graph.add("Conv", [weight, bias], kernel_shape=list(op.weight.shape[2:]), strides=list(op.stride),
                  pads=_pads(op.padding), group=op.groups)
    elif isinstance(op, Gemm):
        weight, bias = graph.constant(f"{name}.weight", op.weight), graph.constant(f"{name}.bias", op.bias)
        graph.add("Gemm", [weight, bias], transB=1)
    elif isinstance(op, BatchNorm):
        graph.add("BatchNormalization", [graph.constant(f"{name}.{field}", getattr(op, field))
                                         for field in ("weight", "bias", "mean", "var")], epsilon=op.eps)
    elif isinstance(op, Pool):
        attributes = dict(kernel_shape=list(op.kernel), strides=list(op.stride), pads=_pads(op.padding))
        if op.kind == "max":
            graph.add("MaxPool", [], **attributes)
        else:  # lenet5 averages zero padding in, as PyTorch does by default
            graph.add("AveragePool", [], count_include_pad=1, **attributes)
    elif isinstance(op, Elementwise):
        if op.kind == "scaled_tanh":  # amplitude · tanh(slope · x): Mul -> Tanh -> Mul
            graph.add("Mul", [graph.constant(f"{name}.slope", np.float32(op.slope))])
            graph.add("Tanh", [])
            graph.add("Mul", [graph.constant(f"{name}.amplitude", np.float32(op.amplitude))])
        else:
            graph.add({"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}[op.kind], [])
    elif isinstance(op, Flatten):
        graph.add("Flatten", [], axis=1)
    elif isinstance(op, Softmax):
        graph.add("Softmax", [], axis=1)
    elif isinstance(op, Rbf):
        _emit_rbf(graph, op, name)
    else:
        raise ExportError(f"no ONNX mapping for operation {type(op).__name__}")


def _emit_rbf(graph: _GraphBuilder, op: Rbf, name: str) -> None:
    """−Σ_j (x_j − c_ij)² = (2c_i·x − |c_i|²) − |x|²: a Gemm (weights 2c, bias −|c|²) minus
    ReduceSumSquare(x), so no (N, 10, 84) difference tensor is ever made. The 2 lives in the
    weights (alpha stays 1), so the int8 weights are the ones `int8.QRbf` quantizes."""
    features = graph.current
    squared_norm = graph.add("ReduceSumSquare", [], axes=[1], keepdims=1)  # (N, 1)
    graph.current = features
    centers = op.centers.astype(np.float64)
    graph.add("Gemm", [graph.constant(f"{name}.twice_centers", (2 * centers).astype(np.float32)),
                       graph.constant(f"{name}.bias", (-(centers**2).sum(axis=1)).astype(np.float32))],
              transB=1)
    graph.add("Sub", [squared_norm])  # broadcasts (N, 1) over the classes


def model_metadata(metadata: dict) -> dict[str, str]:
    """What `metadata_props` carries: strings, JSON for the structured ones."""
    from .. import __version__

    metrics = metadata.get("metrics") or {}
    props = {
        "lenet5.model": str(metadata.get("architecture", "")),
        "lenet5.version": __version__,
        "lenet5.dataset": str(metadata.get("dataset", "")),
        "lenet5.preprocessing": json.dumps(metadata.get("preprocessing")),
        "lenet5.input": "pixels: float32 (N, 1, 28, 28), raw values 0..255; preprocessing is in the graph",
        "lenet5.output": "logits: float32 (N, 10); argmax is the predicted class",
        "lenet5.precision": "float32",
    }
    if isinstance(metrics.get("test_accuracy"), (int, float)):
        props["lenet5.test_accuracy"] = repr(float(metrics["test_accuracy"]))
    if isinstance(metadata.get("class_names"), list):
        props["lenet5.class_names"] = json.dumps(metadata["class_names"])
    return props


def to_onnx(model, metadata: dict):
    """An `onnx.ModelProto` computing the logits of `model` (eval mode) from raw pixels.

    Args:
        model: a `lenet5.nn.Sequential` (e.g. from `lenet5.run.directory.load_run`).
        metadata: the run's metadata; `preprocessing` (method, pad, mean, std) is required,
            `architecture`, `dataset`, `metrics.test_accuracy` and `class_names` are recorded.

    The model passes `onnx.checker` (full check, with shape inference) before it is returned.
    """
    onnx = require_onnx()
    helper = onnx.helper
    graph = _GraphBuilder(onnx)
    ops = inference_ops(model, metadata["preprocessing"])
    for op in ops:
        _emit(graph, op)
    graph.nodes[-1].output[0] = OUTPUT
    side = 28
    pixels = helper.make_tensor_value_info(INPUT, onnx.TensorProto.FLOAT, ["batch", 1, side, side])
    logits = helper.make_tensor_value_info(OUTPUT, onnx.TensorProto.FLOAT, ["batch", _outputs(ops)])
    body = helper.make_graph(graph.nodes, str(metadata.get("architecture") or "lenet5"), [pixels], [logits],
                             graph.initializers)
    from .. import __version__

    proto = helper.make_model(body, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              producer_name="lenet5", producer_version=__version__,
                              doc_string="LeNet-5 family model exported by lenet5: raw pixels in, logits out")
    helper.set_model_props(proto, model_metadata(metadata))
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise ExportError(f"the exported graph fails onnx.checker: {' '.join(str(error).split())[:300]}") from None
    return proto


def _outputs(ops) -> int:
    for op in reversed(ops):
        if isinstance(op, (Gemm, Rbf)):
            return int((op.weight if isinstance(op, Gemm) else op.centers).shape[0])
    raise ExportError("the model ends in no Dense or RBF layer: its number of classes is unknown")
