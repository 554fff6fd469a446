"""Exported models checked and measured: float32 and int8 ONNX beside lenet5's own engine.

For each run directory: the float32 graph's logits against lenet5's reference engine on the
test images (largest error relative to each image's largest |logit|; the argmax must be
identical), accuracy of lenet5, onnxruntime float32, onnxruntime int8 and lenet5's NumPy
int8 path (`lenet5.export.int8`), the int8 loss in points, how often the NumPy int8 path
predicts what onnxruntime's int8 model does, file sizes, and inference throughput
(images/s over all the test images, batches of --batch-size, the median of --rounds) of
onnxruntime float32 and int8 and of `lenet5.fast.FastModel`, each on --threads threads.

    python benchmarks/export.py runs/lenet5 runs/relu ...       # a Markdown table, and JSON
    python benchmarks/export.py runs/* --results benchmarks/export.json --rounds 5

Exits with 1 if a check fails: logits beyond 1e-4, an argmax that differs, an int8 loss over
0.3 points, or NumPy int8 agreeing with onnxruntime's int8 on fewer than 99% of the images.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

TOLERANCE = 1e-4
MAX_INT8_LOSS_POINTS = 0.3
MIN_AGREEMENT = 0.99


def rate(predict, pixels, batch_size: int, rounds: int) -> float:
    """Images per second of `predict` over all `pixels` in batches: the median of `rounds`."""
    predict(pixels[:batch_size])  # warm up: allocations, lazy initialisation
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        for start in range(0, len(pixels), batch_size):
            predict(pixels[start: start + batch_size])
        rates.append(len(pixels) / (time.perf_counter() - started))
    return statistics.median(rates)


def session(data: bytes, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def measure(run_dir: Path, args) -> dict:
    from lenet5.data import load_dataset
    from lenet5.export.int8 import Int8Model
    from lenet5.export.onnx_graph import to_onnx
    from lenet5.export.ops import inference_ops
    from lenet5.export.quantize import calibration_images, quantize_int8
    from lenet5.fast import FastModel
    from lenet5.run.directory import load_run
    from lenet5.run.preprocessing import preprocess_like

    model, metadata = load_run(run_dir)
    dataset = load_dataset(metadata.get("dataset", "mnist"), data_dir=args.data_dir)
    images, labels = dataset.test_images, dataset.test_labels
    pixels = images[:, None].astype(np.float32)
    float_bytes = to_onnx(model, metadata).SerializeToString()
    calibration = calibration_images(dataset.train_images, args.calibration_images)
    int8_bytes = quantize_int8(to_onnx(model, metadata), calibration)
    float_session, int8_session = session(float_bytes, args.threads), session(int8_bytes, args.threads)

    def run(onnx_session, batch):
        return onnx_session.run(None, {"pixels": batch})[0]

    prepared = preprocess_like(images, metadata)
    reference = model.predict_logits(prepared, batch_size=500)
    exported = np.concatenate([run(float_session, pixels[i: i + 1000]) for i in range(0, len(pixels), 1000)])
    relative = np.abs(exported - reference).max(axis=1) / np.abs(reference).max(axis=1)
    int8_logits = np.concatenate([run(int8_session, pixels[i: i + 1000]) for i in range(0, len(pixels), 1000)])
    numpy_int8 = Int8Model.calibrate(inference_ops(model, metadata["preprocessing"]), calibration).predict(pixels)

    def accuracy(predicted):
        return float((predicted == labels).mean())

    fast = FastModel(model)
    result = {
        "run": str(run_dir),
        "model": metadata["architecture"],
        "test_images": int(len(images)),
        "max_relative_error": float(relative.max()),
        "argmax_differences": int((exported.argmax(axis=1) != reference.argmax(axis=1)).sum()),
        "accuracy": {
            "lenet5": accuracy(reference.argmax(axis=1)),
            "onnx_float32": accuracy(exported.argmax(axis=1)),
            "onnx_int8": accuracy(int8_logits.argmax(axis=1)),
            "numpy_int8": accuracy(numpy_int8),
        },
        "numpy_int8_agreement": float((numpy_int8 == int8_logits.argmax(axis=1)).mean()),
        "bytes": {"model_npz": (Path(run_dir) / "model.npz").stat().st_size, "onnx_float32": len(float_bytes),
                  "onnx_int8": len(int8_bytes)},
        "images_per_second": {
            "onnx_float32": rate(lambda batch: run(float_session, batch), pixels, args.batch_size, args.rounds),
            "onnx_int8": rate(lambda batch: run(int8_session, batch), pixels, args.batch_size, args.rounds),
            # lenet5's own engine on what it reads, already-prepared images (preprocessing
            # is inside the ONNX graphs, so they do a little more)
            "lenet5_fast": rate(lambda batch: fast.predict_logits(batch, args.batch_size), prepared,
                                args.batch_size, args.rounds),
        },
    }
    result["int8_loss_points"] = 100 * (result["accuracy"]["onnx_float32"] - result["accuracy"]["onnx_int8"])
    result["failures"] = failures(result)
    return result


def failures(result: dict) -> list[str]:
    found = []
    if result["max_relative_error"] > TOLERANCE:
        found.append(f"logits differ by {result['max_relative_error']:.1e} relative (over {TOLERANCE:g})")
    if result["argmax_differences"]:
        found.append(f"{result['argmax_differences']} predictions differ from lenet5's")
    if result["int8_loss_points"] > MAX_INT8_LOSS_POINTS:
        found.append(f"int8 loses {result['int8_loss_points']:.2f} points (over {MAX_INT8_LOSS_POINTS})")
    if result["numpy_int8_agreement"] < MIN_AGREEMENT:
        found.append(f"NumPy int8 agrees with onnxruntime int8 on {result['numpy_int8_agreement']:.2%}")
    return found


def table(results: list[dict]) -> str:
    rows = ["| model | max rel. error | argmax | accuracy lenet5 | ONNX float32 | ONNX int8 | loss (points) "
            "| NumPy int8 | NumPy = ORT int8 | size .npz | float32 .onnx | int8 .onnx | img/s ORT float32 "
            "| ORT int8 | lenet5 FastModel |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        acc, size, speed = r["accuracy"], r["bytes"], r["images_per_second"]
        same = "identical" if not r["argmax_differences"] else f"{r['argmax_differences']} differ"
        rows.append(
            f"| `{r['model']}` | {r['max_relative_error']:.1e} | {same} | {acc['lenet5']:.2%} | "
            f"{acc['onnx_float32']:.2%} | {acc['onnx_int8']:.2%} | {r['int8_loss_points']:+.2f} | "
            f"{acc['numpy_int8']:.2%} | {r['numpy_int8_agreement']:.2%} | {size['model_npz'] / 1024:,.0f} KB | "
            f"{size['onnx_float32'] / 1024:,.0f} KB | {size['onnx_int8'] / 1024:,.0f} KB | "
            f"{speed['onnx_float32']:,.0f} | {speed['onnx_int8']:,.0f} | {speed['lenet5_fast']:,.0f} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    parser.add_argument("--results", type=Path, default=Path("benchmarks/export.json"), help="JSON written here")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="onnxruntime's threads (lenet5's BLAS uses its own default)")
    parser.add_argument("--calibration-images", type=int, default=300)
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args(argv)

    import onnxruntime

    from lenet5 import __version__
    from lenet5.errors import Lenet5Error
    from lenet5.files.writing import atomic_write_text

    results = []
    for run_dir in args.runs:
        try:
            results.append(measure(run_dir, args))
        except Lenet5Error as error:
            print(f"{run_dir}: {error}", file=sys.stderr)
            return 1
        print(f"measured {run_dir}", file=sys.stderr, flush=True)
    print(table(results))
    for r in results:
        for failure in r["failures"]:
            print(f"FAILED {r['run']}: {failure}")
    report = {"date": time.strftime("%Y-%m-%d"), "lenet5": __version__, "onnxruntime": onnxruntime.__version__,
              "numpy": np.__version__, "threads": args.threads, "batch_size": args.batch_size,
              "rounds": args.rounds, "results": results}
    atomic_write_text(args.results, json.dumps(report, indent=2) + "\n")
    print(f"results written to {args.results}", file=sys.stderr)
    return 1 if any(r["failures"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
