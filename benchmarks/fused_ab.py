"""lenet5 training steps with the fused BatchNorm → max-pool → ReLU step on and off, alternately.

One model, one process: steps alternate off, on, on, off, ... on real MNIST batches, so
drift in the machine hits both settings alike; the medians and their ratio are printed.
This compares lenet5 with itself (see bench.py for the comparison with PyTorch).

    python benchmarks/fused_ab.py                    # lenet5, batch 256, 300 steps
    python benchmarks/fused_ab.py --batch-size 64 --steps 800
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import numpy as np  # noqa: E402


def main(argv=None) -> int:
    from lenet5.data import load_dataset, preprocess
    from lenet5.fast import FastModel
    from lenet5.nn import Adam, SoftmaxCrossEntropy
    from lenet5.zoo.models import build_model, get_spec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)
    spec = get_spec(args.model)
    dataset = load_dataset("mnist")
    count = args.batch_size * 32
    x = preprocess(dataset.train_images[:count], method=spec.preprocessing.method, pad=spec.preprocessing.pad,
                   mean=dataset.mean, std=dataset.std)
    y = dataset.train_labels[:count].astype(np.int64)
    model = build_model(args.model, seed=0)
    optimizer = Adam(model.parameters(), lr=1e-3)
    engines = {fused: FastModel(model, fused=fused) for fused in (False, True)}
    times = {False: [], True: []}
    warm_up = 20
    for step in range(args.steps + warm_up):
        fused = (False, True, True, False)[step % 4]
        engine = engines[fused]
        batch = slice((step % 32) * args.batch_size, (step % 32 + 1) * args.batch_size)
        started = time.perf_counter()
        optimizer.zero_grad()
        _, dlogits = SoftmaxCrossEntropy.value_and_grad(engine.forward(x[batch]), y[batch])
        engine.backward(dlogits, input_grad=False)
        optimizer.step()
        if step >= warm_up:
            times[fused].append((time.perf_counter() - started) * 1000)
    off, on = statistics.median(times[False]), statistics.median(times[True])
    print(f"{args.model}, batch {args.batch_size}, {args.steps} steps: layers one by one {off:.2f} ms/step, "
          f"fused {on:.2f} ms/step, ratio fused / unfused {on / off:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
