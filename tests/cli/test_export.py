"""`lenet5 export`: what it writes, and the one-line refusals that write nothing."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from lenet5.cli.main import main
from lenet5.run.directory import load_run
from lenet5.run.preprocessing import preprocess_like

from ..export.conftest import synthetic_digits, write_run
from ..helpers.crafted import set_field, write_truncated, write_with_metadata

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lenet5: error: "), err
    return err


def onnx_logits(path, images_uint8) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"pixels": images_uint8[:, None].astype(np.float32)})[0]


def test_export_writes_a_graph_that_predicts_like_the_run(relu_run, tmp_path, capsys):
    output = tmp_path / "shipped" / "model.onnx"
    assert main(["export", str(relu_run), "-o", str(output)]) == 0
    assert f"wrote {output}: relu, float32, opset 17" in capsys.readouterr().out
    model, metadata = load_run(relu_run)
    images = synthetic_digits(100, seed=5)
    reference = model.predict_logits(preprocess_like(images, metadata))
    exported = onnx_logits(output, images)
    assert np.abs(exported - reference).max() <= 1e-4 * np.abs(reference).max()
    props = {prop.key: prop.value for prop in onnx.load(output).metadata_props}
    assert props["lenet5.model"] == "relu" and json.loads(props["lenet5.preprocessing"])["pad"] == 2


def test_the_default_output_is_beside_the_run(relu_run):
    assert main(["export", str(relu_run)]) == 0
    onnx.checker.check_model(onnx.load(relu_run / "model.onnx"))


def refusals(tmp_path, relu_run):
    """(name, run directory, output) for each run or output that export must refuse."""
    corrupt = write_run(tmp_path / "corrupt", "relu")
    write_truncated(corrupt / "model.npz", relu_run / "model.npz")
    unknown = write_run(tmp_path / "unknown", "relu")
    write_with_metadata(unknown / "model.npz", relu_run / "model.npz", set_field("architecture", "lenet7"))
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    return {
        "missing": (tmp_path / "nowhere", "no such run directory"),
        "corrupt": (corrupt, "model.npz"),
        "unknown model": (unknown, "lenet7"),
        "not a run": (unfinished, "not a finished lenet5 run"),
    }


@pytest.mark.parametrize("case", ["missing", "corrupt", "unknown model", "not a run"])
def test_a_bad_run_is_one_line_and_writes_nothing(case, relu_run, tmp_path, capsys):
    run_dir, expected = refusals(tmp_path, relu_run)[case]
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    old = shipped / "model.onnx"
    old.write_bytes(b"the previous export")
    assert main(["export", str(run_dir), "-o", str(old), "--overwrite"]) == 1
    assert expected in one_line_error(capsys)
    assert old.read_bytes() == b"the previous export"
    assert sorted(path.name for path in shipped.iterdir()) == ["model.onnx"]  # no temporary left


def test_an_output_that_is_a_directory_or_a_run_file_is_refused(relu_run, tmp_path, capsys):
    before = (relu_run / "model.npz").read_bytes()
    assert main(["export", str(relu_run), "-o", str(relu_run / "model.npz")]) == 1
    assert "is inside the run directory" in one_line_error(capsys)
    assert (relu_run / "model.npz").read_bytes() == before
    assert main(["export", str(relu_run), "-o", str(tmp_path)]) == 1
    assert "is a directory" in one_line_error(capsys)


def test_without_the_export_extra_the_error_names_it(relu_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now fails as if not installed
    assert main(["export", str(relu_run), "-o", str(tmp_path / "model.onnx")]) == 1
    assert "lenet5[export]" in one_line_error(capsys)
    assert not (tmp_path / "model.onnx").exists()


def test_a_quantizer_failure_is_one_line(monkeypatch):
    import onnxruntime.quantization

    from lenet5.export.onnx_graph import to_onnx
    from lenet5.export.ops import ExportError
    from lenet5.export.quantize import quantize_int8

    from ..export.conftest import metadata_for, random_model

    def broken(*args, **kwargs):
        raise RuntimeError("calibration\nfailed")

    monkeypatch.setattr(onnxruntime.quantization, "quantize_static", broken)
    with pytest.raises(ExportError, match="could not quantize the model: RuntimeError: calibration failed"):
        quantize_int8(to_onnx(random_model("relu"), metadata_for("relu")), synthetic_digits(10)[:, None] * 1.0)


@pytest.mark.slow
def test_int8_export_of_a_trained_run(tmp_path, mnist_dir, capsys):
    """A short real run: float32 and int8 exports, onnxruntime against lenet5 on the 10,000
    test images, and the NumPy int8 path against onnxruntime's int8 model."""
    from lenet5.data import load_dataset
    from lenet5.export.int8 import Int8Model
    from lenet5.export.ops import inference_ops
    from lenet5.export.quantize import calibration_images

    run_dir = tmp_path / "run"
    assert main(["train", "--model", "relu", "--epochs", "1", "--train-limit", "10000", "--out", str(run_dir),
                 "--data-dir", str(mnist_dir), "--no-progress"]) == 0
    assert main(["export", str(run_dir), "-o", str(tmp_path / "float.onnx")]) == 0
    assert main(["export", str(run_dir), "--int8", "-o", str(tmp_path / "int8.onnx"),
                 "--data-dir", str(mnist_dir)]) == 0
    assert "int8 (QDQ, calibrated on 300 training images)" in capsys.readouterr().out
    dataset = load_dataset("mnist", data_dir=mnist_dir)
    images, labels = dataset.test_images, dataset.test_labels
    model, metadata = load_run(run_dir)
    reference = model.predict_logits(preprocess_like(images, metadata), batch_size=500)
    exported = onnx_logits(tmp_path / "float.onnx", images)
    assert (np.abs(exported - reference).max(axis=1) <= 1e-4 * np.abs(reference).max(axis=1)).all()
    assert np.array_equal(exported.argmax(axis=1), reference.argmax(axis=1))
    ort_int8 = onnx_logits(tmp_path / "int8.onnx", images).argmax(axis=1)
    numpy_int8 = Int8Model.calibrate(inference_ops(model, metadata["preprocessing"]),
                                     calibration_images(dataset.train_images)).predict(images)
    accuracy = {name: (predicted == labels).mean() for name, predicted in
                (("float", reference.argmax(axis=1)), ("onnxruntime int8", ort_int8), ("numpy int8", numpy_int8))}
    assert accuracy["onnxruntime int8"] >= accuracy["float"] - 0.005, accuracy
    assert (numpy_int8 == ort_int8).mean() >= 0.99
    assert abs(accuracy["numpy int8"] - accuracy["onnxruntime int8"]) <= 0.003, accuracy
    props = {prop.key: prop.value for prop in onnx.load(tmp_path / "int8.onnx").metadata_props}
    assert props["lenet5.precision"] == "int8" and props["lenet5.model"] == "relu"


def test_the_command_line_loads_without_importing_onnx():
    import subprocess

    code = ("import sys; from lenet5.cli.main import build_parser; build_parser(); "
            "print(sorted(name for name in ('onnx', 'onnxruntime') if name in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    from lenet5.cli.main import build_parser

    assert "export" in build_parser().format_help()
