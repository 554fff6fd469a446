"""The ONNX graph against lenet5's own engine: every zoo model, run by onnxruntime."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lenet5.export.onnx_graph import INPUT, IR_VERSION, OPSET, OUTPUT, to_onnx
from lenet5.export.ops import ExportError
from lenet5.nn import Dense, Flatten, ReLU, ScaledTanh, Sequential
from lenet5.run.preprocessing import preprocess_like
from lenet5.zoo.models import MODELS

from .conftest import hand_built, metadata_for, random_model, synthetic_digits

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TOLERANCE = 1e-4  # relative to the largest logit of each image


def run_onnx(proto, images_uint8: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT], {INPUT: images_uint8[:, None].astype(np.float32)})[0]


def assert_same_logits(exported: np.ndarray, reference: np.ndarray) -> None:
    """Logits within TOLERANCE of each image's largest |logit|; the same argmax wherever the
    reference's best two classes are further apart than that (closer ones are ties at float32
    precision, either answer right)."""
    assert exported.shape == reference.shape
    scale = np.abs(reference).max(axis=1)
    error = np.abs(exported - reference).max(axis=1) / scale
    assert error.max() <= TOLERANCE, f"largest relative error {error.max():.2e}"
    top_two = np.sort(reference, axis=1)[:, -2:]
    decided = top_two[:, 1] - top_two[:, 0] > 2 * TOLERANCE * scale
    assert (exported.argmax(axis=1) == reference.argmax(axis=1))[decided].all()


@pytest.mark.parametrize("name", list(MODELS))
def test_every_zoo_model_matches_the_reference_engine(name):
    model, metadata = random_model(name), metadata_for(name)
    images = synthetic_digits(200, seed=1)
    reference = model.predict_logits(preprocess_like(images, metadata))
    assert_same_logits(run_onnx(to_onnx(model, metadata), images), reference)


def test_batchnorm_statistics_reach_the_graph():
    """Folding is tested for real: the random statistics change the logits by far more than
    the tolerance, and the export follows them."""
    perturbed, metadata = random_model("lenet5"), metadata_for("lenet5")
    fresh = random_model("lenet5")
    for _, layer in fresh.named_modules():
        if type(layer).__name__.startswith("BatchNorm"):
            layer.running_mean[:], layer.running_var[:] = 0, 1
    images = synthetic_digits(50, seed=2)
    exported = run_onnx(to_onnx(perturbed, metadata), images)
    without_statistics = fresh.predict_logits(preprocess_like(images, metadata))
    assert np.abs(exported - without_statistics).max() > 100 * TOLERANCE * np.abs(exported).max()


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_batch_size_is_dynamic(batch):
    model, metadata = random_model("tanh"), metadata_for("tanh")
    images = synthetic_digits(batch, seed=batch)
    logits = run_onnx(to_onnx(model, metadata), images)
    assert logits.shape == (batch, 10)
    assert_same_logits(logits, model.predict_logits(preprocess_like(images, metadata)))


def test_graph_interface_versions_and_metadata():
    proto = to_onnx(random_model("relu"), metadata_for("relu"))
    assert proto.ir_version == IR_VERSION and 13 <= OPSET <= 21
    assert [(entry.domain, entry.version) for entry in proto.opset_import] == [("", OPSET)]
    (pixels,), (logits,) = proto.graph.input, proto.graph.output
    dims = [d.dim_param or d.dim_value for d in pixels.type.tensor_type.shape.dim]
    assert (pixels.name, dims) == (INPUT, ["batch", 1, 28, 28])
    assert pixels.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_param or d.dim_value for d in logits.type.tensor_type.shape.dim] == ["batch", 10]
    props = {prop.key: prop.value for prop in proto.metadata_props}
    assert props["lenet5.model"] == "relu" and props["lenet5.test_accuracy"] == "0.5"
    assert json.loads(props["lenet5.preprocessing"]) == metadata_for("relu")["preprocessing"]
    assert props["lenet5.precision"] == "float32" and props["lenet5.version"]
    onnx.checker.check_model(proto, full_check=True)


def initializers(proto) -> dict[str, np.ndarray]:
    return {tensor.name: onnx.numpy_helper.to_array(tensor) for tensor in proto.graph.initializer}


def test_lenet5_1998_mapping_c3_table_subsampling_and_scaled_tanh():
    model = random_model("lenet5-1998")
    table = model.c3.connections
    proto = to_onnx(model, metadata_for("lenet5-1998"))
    convs = [node for node in proto.graph.node if node.op_type == "Conv"]
    groups = [next((a.i for a in node.attribute if a.name == "group"), 1) for node in convs]
    assert groups == [1, 6, 1, 16, 1]  # C1, S2 depthwise, C3, S4 depthwise, C5
    weights = initializers(proto)
    c3 = weights[convs[2].input[1]]
    assert (c3[~table] == 0).all() and (c3[table] != 0).all()
    s2 = weights[convs[1].input[1]]
    assert np.array_equal(s2, np.broadcast_to(model.s2.weight.value[:, None, None, None], (6, 1, 2, 2)))
    op_types = [node.op_type for node in proto.graph.node]
    assert op_types.count("Tanh") == 6 and "ReduceSumSquare" in op_types  # after C1, S2, C3, S4, C5, F6


def test_rbf_output_is_the_negated_penalties():
    """A hand-built Dense -> ScaledTanh -> RBF: logits −Σ(x − c)², spread enough that every
    argmax is decided, so it must be identical."""
    from lenet5.nn import RBF

    rng = np.random.default_rng(3)
    model = Sequential(("flat", Flatten()), ("f6", Dense(784, 84, rng=4)), ("a6", ScaledTanh()),
                       ("output", RBF(84, 10, centers=rng.choice([-1.0, 1.0], (10, 84)))),
                       name="tiny-rbf", input_shape=(1, 28, 28))
    model.f6.weight.value *= 20  # features near ±1.7, as a trained F6 gives
    metadata = {"architecture": "tiny-rbf", "preprocessing": {"method": "lecun", "pad": 0}}
    images = synthetic_digits(300, seed=4)
    reference = model.predict_logits(preprocess_like(images, metadata))
    exported = run_onnx(to_onnx(model, metadata), images)
    assert (reference < 0).all()
    assert_same_logits(exported, reference)
    assert np.array_equal(exported.argmax(axis=1), reference.argmax(axis=1))


def test_an_unknown_layer_is_refused_by_name():
    class Swish(ReLU):
        pass

    model = Sequential(Flatten(), Dense(784, 10, rng=0), Swish(), input_shape=(1, 28, 28))
    with pytest.raises(ExportError, match="Swish"):
        to_onnx(model.eval(), {"preprocessing": {"method": "scale", "pad": 0}})


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_every_zoo_model_on_the_mnist_test_set(name, mnist_dir):
    from lenet5.data import load_dataset

    images = load_dataset("mnist", data_dir=mnist_dir).test_images
    model, metadata = random_model(name), metadata_for(name)
    reference = model.predict_logits(preprocess_like(images, metadata), batch_size=500)
    assert_same_logits(run_onnx(to_onnx(model, metadata), images), reference)


@pytest.mark.parametrize("kind", ["strided and padded", "unfolded batchnorm and softmax"])
def test_layers_beyond_the_zoo(kind):
    model = hand_built(kind)
    metadata = {"architecture": kind, "preprocessing": {"method": "scale", "pad": 0}}
    proto = to_onnx(model, metadata)
    if kind.startswith("unfolded"):
        assert [node.op_type for node in proto.graph.node].count("BatchNormalization") == 2
    images = synthetic_digits(100, seed=6)
    assert_same_logits(run_onnx(proto, images), model.predict_logits(preprocess_like(images, metadata)))
