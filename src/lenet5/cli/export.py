"""`lenet5 export RUN_DIR [--int8] [-o FILE] [--overwrite]`: a run's model as an ONNX file.

onnx and onnxruntime (the `export` extra) are imported inside the functions, so the rest of
the command line works without them.
"""

from __future__ import annotations

from pathlib import Path

from ..export.quantize import CALIBRATION_IMAGES
from .arguments import positive_int


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="write a run's model as ONNX (float32 or int8)")
    parser.add_argument("run_dir", type=Path, help="a run directory written by `lenet5 train`")
    # A str, not a Path: Path drops the trailing slash that says "a directory".
    parser.add_argument("-o", "--output",
                        help="the .onnx file to write (RUN_DIR/model.onnx, or model-int8.onnx with --int8)")
    parser.add_argument("--overwrite", action="store_true", help="replace the file if it exists")
    parser.add_argument("--int8", action="store_true",
                        help="static int8 quantization (QDQ, per-channel weights), calibrated on training images")
    parser.add_argument("--calibration-images", type=positive_int, default=CALIBRATION_IMAGES, metavar="N",
                        help=f"training images the int8 ranges are measured on ({CALIBRATION_IMAGES})")
    parser.add_argument("--data-dir", type=Path, help="directory with the dataset's IDX files (for --int8)")
    parser.set_defaults(handler=export_command)


def export_command(args) -> int:
    from ..export.ship import default_output, export_run

    output = args.output if args.output is not None else default_output(args.run_dir, args.int8)
    summary = export_run(args.run_dir, output, int8=args.int8, calibration_images=args.calibration_images,
                         data_dir=args.data_dir, overwrite=args.overwrite)
    print(summary)
    return 0
