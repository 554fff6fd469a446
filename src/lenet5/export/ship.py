"""A run directory to an ONNX file on disk: load and check the run, build the graph,
quantize it if asked, and write it atomically (a failure anywhere writes nothing)."""

from __future__ import annotations

import os
from pathlib import Path

from .ops import ExportError


def default_output(run_dir: str | os.PathLike, int8: bool = False) -> Path:
    """Where `lenet5 export RUN_DIR` writes without -o: beside the run's weights."""
    return Path(run_dir) / ("model-int8.onnx" if int8 else "model.onnx")


def export_run(run_dir: Path, output: str | os.PathLike, *, int8: bool = False, calibration_images: int = 300,
               data_dir: Path | None = None, overwrite: bool = False) -> str:
    """Write the run's model to `output` as ONNX; returns a one-line summary of what was written.

    Every problem (a missing, corrupt or unknown run; a missing extra; an output that may not
    be written, `check_output`) is a one-line `Lenet5Error`, and `output` is left as it was.
    """
    from ..files.writing import atomic_write_bytes, write_failure
    from ..run.directory import load_run
    from .onnx_graph import OPSET, require_onnx, to_onnx

    run_dir = Path(run_dir)
    output = check_output(run_dir, output, int8=int8, overwrite=overwrite)
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
    check_output(run_dir, output, int8=int8, overwrite=overwrite)  # again: it may have appeared meanwhile
    try:
        atomic_write_bytes(output, data)
    except OSError as error:
        raise ExportError(write_failure(output, error)) from None
    return f"wrote {output}: {metadata['architecture']}, {what}, opset {OPSET}, {len(data):,} bytes"


def check_output(run_dir: Path, output: str | os.PathLike, *, int8: bool, overwrite: bool) -> Path:
    """`output` as a Path if the export may be written there (`check_destination`'s rule), and
    it is not inside a run directory unless it is this run's own export: a file among a run's
    would pass for part of that run, and the run's files are not ours to replace."""
    from ..files.writing import check_destination
    from ..run.directory import holds_a_run

    own, path = default_output(run_dir, int8), Path(output)
    folder = Path(os.path.realpath(path.parent))
    # Checked before check_destination, whose "use --overwrite" would not help here.
    if holds_a_run(folder) and (folder != Path(os.path.realpath(own.parent)) or path.name != own.name):
        raise ExportError(f"{path}: is inside the run directory {path.parent}, where an export may only be "
                          f"its own run's {own.name} (the default); choose a path outside run directories")
    return check_destination(output, what="an ONNX file", overwrite=overwrite)
