"""Preprocessing before and after a change: `prepare_digit` on MNIST test digits and on the test
suite's renderings of them (scans, shadows, ruled paper, hairlines, transparent canvases),
timed, with every output kept so that two trees can be compared pixel for pixel.

    python benchmarks/preprocessing.py --tree /path/to/old/checkout --out old.npz
    python benchmarks/preprocessing.py --out new.npz            # this checkout
    python benchmarks/preprocessing.py --compare old.npz new.npz

A tree is a lenet5 checkout (its src/ and tests/ are imported); MNIST comes from the cache
(`lenet5 data fetch --dataset mnist`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def measure(tree: Path, out: Path) -> None:
    sys.path[:0] = [str(tree / "src"), str(tree)]
    from lenet5.data import load_dataset
    from lenet5.image import prepare_digit

    # Where the suite keeps its renderings: tests/image/test_digit.py, earlier tests/test_image.py.
    name = "tests.image.test_digit" if (tree / "tests" / "image" / "test_digit.py").exists() else "tests.test_image"
    render = importlib.import_module(name)
    digits = load_dataset("mnist").test_images[:600]
    sets = {
        "mnist as floats": [digit.astype(np.float64) / 255.0 for digit in digits],
        "scan": [render.as_scan(digit, seed=i) for i, digit in enumerate(digits[:100])],
        "shadow": [render.with_shadow(render.as_scan(digit, seed=i)) for i, digit in enumerate(digits[100:200])],
        "ruled": [render.on_lined_paper(render.as_scan(digit, seed=i)) for i, digit in enumerate(digits[200:300])],
        "hairline": [render.in_hairline(digit) for digit in digits[300:400]],
        "transparent": [np.asarray(render.on_transparent(digit)) for digit in digits[400:500]],
    }
    kept = {}
    for label, images in sets.items():
        prepare_digit(images[0])  # imports and first-call costs out of the timing
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            prepared = [prepare_digit(image) for image in images]
            best = min(best, time.perf_counter() - start)
        kept[f"{label}/pixels"] = np.stack([digit.pixels for digit in prepared])
        kept[f"{label}/verdicts"] = np.array([digit.verdict for digit in prepared])
        kept[f"{label}/seconds"] = np.array(best / len(images))
        print(f"{label:16s} {len(images):4d} images  {best / len(images) * 1e3:6.2f} ms each", flush=True)
    np.savez(out, **kept)


def compare(before: Path, after: Path) -> None:
    old, new = np.load(before), np.load(after)
    for key in old.files:
        label, kind = key.split("/")
        if kind == "pixels":
            differ = old[key] != new[key]
            verdicts = (old[f"{label}/verdicts"] == new[f"{label}/verdicts"]).mean()
            speed = float(old[f"{label}/seconds"] / new[f"{label}/seconds"])
            print(f"{label:16s} pixels differing: {differ.mean() * 100:.3f}%  verdicts agreeing: "
                  f"{verdicts * 100:.1f}%  after runs {speed:.2f}x as fast")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=ROOT)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare)
    else:
        measure(args.tree.resolve(), args.out or Path("preprocessing.npz"))


if __name__ == "__main__":
    main()
