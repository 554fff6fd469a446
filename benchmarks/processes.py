"""Inference throughput of one process against two, with BLAS on 1 or 2 threads.

The measurement behind lenet5.fast.DataParallel, which runs one process per core, each with
BLAS on one thread. Rows: `processes × threads` are independent processes (fresh ones for
each measurement, the thread count set before NumPy loads BLAS), each running
`FastModel.predict_logits` on its part of the MNIST test images, started together on a
signal: no shared model and no exchanges, the ceiling. `DataParallel` is
`DataParallel(model, 2).predict_logits` on all the images from this process. Throughput is
all the images over the time until the last process finishes. Rounds cycle the
configurations so drift in the machine hits each; medians are printed.

    python benchmarks/processes.py                           # lenet5, batch 256, 3 rounds
    python benchmarks/processes.py --model relu --rounds 5
    python benchmarks/processes.py --images 1000 --rounds 1  # a quick check
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

CONFIGURATIONS = ((1, 1), (1, 2), (2, 1), (2, 2))  # (independent processes, BLAS threads each)


def test_images(model_name, count):
    from bench import load_data

    return load_data(model_name)[2][:count]


def worker(model_name, part, parts, images, batch_size, repeats) -> None:
    """Predict one part of the test images `repeats` times once stdin says go; print the seconds."""
    from lenet5.fast import FastModel
    from lenet5.models import build_model

    x = test_images(model_name, images)
    x = x[part * len(x) // parts : (part + 1) * len(x) // parts]
    fast = FastModel(build_model(model_name, seed=0))
    fast.predict_logits(x[: batch_size * 2], batch_size)
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    for _ in range(repeats):
        fast.predict_logits(x, batch_size)
    print(time.perf_counter() - started, flush=True)


def independent_rate(args, processes, threads) -> float:
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    command = [sys.executable, __file__, "--model", args.model, "--images", str(args.images),
               "--batch-size", str(args.batch_size), "--repeats", str(args.repeats), "--worker"]
    workers = [subprocess.Popen(command + [str(part), str(processes)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, env=env) for part in range(processes)]
    for process in workers:
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"worker failed to start (exit status {process.wait()})")
    started = time.perf_counter()
    for process in workers:
        process.stdin.write("go\n")
        process.stdin.flush()
    for process in workers:
        process.stdout.readline()
        if process.wait() != 0:
            raise RuntimeError(f"worker exited with status {process.returncode}")
    return args.images * args.repeats / (time.perf_counter() - started)


def data_parallel_rate(args, x) -> float:
    from lenet5.fast.parallel import DataParallel
    from lenet5.models import build_model

    with DataParallel(build_model(args.model, seed=0), workers=2) as split:
        split.predict_logits(x[: args.batch_size * 4], args.batch_size)  # starts the workers
        started = time.perf_counter()
        for _ in range(args.repeats):
            split.predict_logits(x, args.batch_size)
        return len(x) * args.repeats / (time.perf_counter() - started)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--images", type=int, default=10_000, help="the first N test images")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5, help="passes over the images per measurement")
    parser.add_argument("--worker", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.model, *args.worker, args.images, args.batch_size, args.repeats)
        return 0
    x = test_images(args.model, args.images)
    args.images = len(x)
    rates = {f"{p} process{'es' if p > 1 else ''} × {t} thread{'s' if t > 1 else ''}": [] for p, t in CONFIGURATIONS}
    rates["DataParallel(workers=2)"] = []
    for _ in range(args.rounds):
        for (processes, threads), values in zip(CONFIGURATIONS, rates.values()):
            values.append(independent_rate(args, processes, threads))
        rates["DataParallel(workers=2)"].append(data_parallel_rate(args, x))
    base = statistics.median(rates["1 process × 2 threads"])  # NumPy's default on 2 cores
    print(f"{args.model}, batch {args.batch_size}, {args.rounds} rounds; img/s over {args.images:,} test images:")
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"  {name:<24} {rate:>9,.0f} img/s (min {min(values):,.0f}, max {max(values):,.0f}); "
              f"{rate / base:.2f}x one process on 2 threads")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
