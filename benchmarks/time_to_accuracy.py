"""How long the default `lenet5 train` takes to reach 99.0% and 99.2% MNIST test accuracy.

    python benchmarks/time_to_accuracy.py                      # trains: lenet5 train --track-test
    python benchmarks/time_to_accuracy.py --run-dir runs/x     # reads a run made with --track-test
    python benchmarks/time_to_accuracy.py -- --epochs 10       # extra train arguments after --

`--track-test` evaluates the test set after every epoch (for this measurement only: nothing is
chosen by it). The time to a target is the training time, summed over epochs, until the first
epoch whose test accuracy reaches it; evaluation time is not counted. Writes
benchmarks/time_to_accuracy.json with the command, the per-epoch curve and the load average.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

TARGETS = (0.990, 0.992, 0.995)


def time_to_targets(history: list[dict], targets=TARGETS) -> dict[str, dict | None]:
    """For each target: the first epoch whose test accuracy reaches it and the training
    seconds until its end; None where no epoch does."""
    reached: dict[str, dict | None] = {f"{target:.3f}": None for target in targets}
    seconds = 0.0
    for row in history:
        seconds += row["seconds"]
        accuracy = row.get("test_accuracy")
        if accuracy is None:
            raise SystemExit(f"epoch {row['epoch']} has no test accuracy: train with --track-test")
        for target in targets:
            if reached[f"{target:.3f}"] is None and accuracy >= target:
                reached[f"{target:.3f}"] = {"epoch": row["epoch"], "train_seconds": seconds}
    return reached


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, help="a finished run trained with --track-test (no training)")
    parser.add_argument("--out", type=Path, default=Path("runs/time-to-accuracy"))
    parser.add_argument("--output", type=Path, default=Path(__file__).with_name("time_to_accuracy.json"))
    parser.add_argument("extra", nargs="*", help="more `lenet5 train` arguments (after --)")
    args = parser.parse_args(argv)
    command = None
    if args.run_dir is None:
        args.run_dir = args.out
        command = ["lenet5", "train", "--track-test", "--out", str(args.out), "--overwrite", "--no-progress",
                   *args.extra]
        subprocess.run([sys.executable, "-m", "lenet5"] + command[1:], check=True)
    history = json.loads((args.run_dir / "history.json").read_text())
    settings = json.loads((args.run_dir / "model.json").read_text())["hyperparameters"]
    reached = time_to_targets(history)
    for target, where in reached.items():
        text = "not reached" if where is None else f"{where['train_seconds']:.0f} s (epoch {where['epoch']})"
        print(f"{float(target) * 100:.1f}%: {text}")
    best = max(row["test_accuracy"] for row in history)
    print(f"final {history[-1]['test_accuracy'] * 100:.2f}% after {sum(r['seconds'] for r in history):.0f} s "
          f"of training (best epoch {best * 100:.2f}%)")
    report = {
        "date": datetime.date.today().isoformat(),
        "command": shlex.join(command) if command else None, "run_dir": str(args.run_dir),
        "hyperparameters": settings, "reached": reached,
        "curve": [{"epoch": r["epoch"], "test_accuracy": r["test_accuracy"], "seconds": r["seconds"]} for r in history],
        "load_average": os.getloadavg(),
    }
    from lenet5.files.writing import atomic_write_text

    atomic_write_text(args.output, json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
