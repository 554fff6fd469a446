"""Inference throughput of one process against two at once, with OpenBLAS on 1 or 2 threads.

The measurement behind lenet5.nn.DataParallel (which keeps each of its processes' OpenBLAS
to one thread): independent processes here, with no shared model or exchanges. Each
configuration starts fresh worker processes (the thread count must be set before NumPy
loads OpenBLAS); every worker loads the model and its share of the 10,000 MNIST test images,
warms up, and then all of them start predicting together on a signal. Throughput is all
their images over the time until the last one finishes. Rounds cycle the configurations so
drift in the machine hits each; medians are printed.

    python benchmarks/processes.py                      # lenet5, batch 256, 3 rounds
    python benchmarks/processes.py --model relu --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

CONFIGURATIONS = ((1, 1), (1, 2), (2, 1), (2, 2))  # (processes, OpenBLAS threads each)


def worker(model_name, share, shares, batch_size, repeats) -> None:
    """Predict one share of the test set `repeats` times once stdin says go; print the seconds."""
    from bench import load_data
    from lenet5.models import build_model

    _, _, x_test, _ = load_data(model_name)
    part = x_test[share * len(x_test) // shares: (share + 1) * len(x_test) // shares]
    model = build_model(model_name, seed=0)
    model.predict_logits(part[:batch_size * 2], batch_size)
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    for _ in range(repeats):
        model.predict_logits(part, batch_size)
    print(time.perf_counter() - started, flush=True)


def throughput(model_name, processes, threads, batch_size, repeats) -> float:
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", str(share), str(processes), "--model", model_name,
             "--batch-size", str(batch_size), "--repeats", str(repeats)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )
        for share in range(processes)
    ]
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
    return 10_000 * repeats / (time.perf_counter() - started)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5, help="passes over the test set per measurement")
    parser.add_argument("--worker", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.model, *args.worker, args.batch_size, args.repeats)
        return 0
    rates = {configuration: [] for configuration in CONFIGURATIONS}
    for _ in range(args.rounds):
        for processes, threads in CONFIGURATIONS:
            rates[(processes, threads)].append(throughput(args.model, processes, threads, args.batch_size, args.repeats))
    base = statistics.median(rates[(1, 2)])
    print(f"{args.model}, batch {args.batch_size}, {args.rounds} rounds; img/s over the 10,000 test images:")
    for (processes, threads), values in rates.items():
        rate = statistics.median(values)
        print(f"  {processes} process(es), OpenBLAS {threads} thread(s) each: {rate:>9,.0f} img/s "
              f"(min {min(values):,.0f}, max {max(values):,.0f}); {rate / base:.2f}x one process on 2 threads")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
