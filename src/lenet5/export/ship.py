"""A run directory to an ONNX file on disk: load and check the run, build the graph,
quantize it if asked, and write it atomically (a failure anywhere writes nothing)."""

from __future__ import annotations

from pathlib import Path

from .ops import ExportError


def export_run(run_dir: Path, output: Path, *, int8: bool = False, calibration_images: int = 300,
               data_dir: Path | None = None) -> str:
    """Write the run's model to `output` as ONNX; returns a one-line summary of what was written.

    Every problem (a missing, corrupt or unknown run; a missing extra; a file that cannot be
    written) is a one-line `Lenet5Error`, and `output` is left as it was.
    """
    from ..fileio import atomic_write_bytes
    from ..rundir import RUN_FILES, load_run, os_reason
    from .onnx_graph import OPSET, require_onnx, to_onnx

    run_dir, output = Path(run_dir), Path(output)
    if output.is_dir():
        raise ExportError(f"{output}: is a directory; give the .onnx file to write")
    if output.resolve().parent == run_dir.resolve() and output.name in RUN_FILES:
        raise ExportError(f"{output}: is one of the run's own files; choose another output name")
    require_onnx()  # before the run loads: a missing extra is the first thing to hear about
    model, metadata = load_run(run_dir)
    proto = to_onnx(model, metadata)
    if int8:
        from ..data import load_dataset
        from .quantize import calibration_images as draw_calibration, quantize_int8, require_onnxruntime

        require_onnxruntime()
        dataset = load_dataset(metadata.get("dataset", "mnist"), data_dir=data_dir)
        calibration = draw_calibration(dataset.train_images, calibration_images)
        data = quantize_int8(proto, calibration)
        what = f"int8 (QDQ, calibrated on {len(calibration)} training images)"
    else:
        data = proto.SerializeToString()
        what = "float32"
    try:
        atomic_write_bytes(output, data)
    except OSError as error:
        raise ExportError(f"cannot write {output}: {os_reason(error)}") from None
    return f"wrote {output}: {metadata['architecture']}, {what}, opset {OPSET}, {len(data):,} bytes"
