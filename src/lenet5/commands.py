"""`lenet5 train | evaluate | predict | summary | gradcheck`: thin wrappers over the library."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import fields
from pathlib import Path

import numpy as np

from .errors import Lenet5Error
from .models import MODELS, get_spec


def register(subparsers) -> None:
    from .report import register as register_report

    _register_train(subparsers)
    parser = subparsers.add_parser("evaluate", help="evaluate a trained run on its test set")
    parser.add_argument("run_dir", type=Path, help="a run directory written by `lenet5 train`")
    parser.add_argument("--data-dir", type=Path, help="directory with the dataset's IDX files")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.set_defaults(handler=evaluate_command)

    parser = subparsers.add_parser("predict", help="classify images of handwritten digits")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="PNG, JPEG, ... files")
    parser.add_argument("--top", type=int, default=3, help="how many classes to show (3)")
    parser.set_defaults(handler=predict_command)

    parser = subparsers.add_parser("summary", help="print a model's layers and parameter counts")
    parser.add_argument("--model", default="lenet5", help=f"one of: {', '.join(MODELS)}")
    parser.set_defaults(handler=summary_command)

    parser = subparsers.add_parser("gradcheck", help="check a model's backward pass by finite differences")
    parser.add_argument("--model", default="lenet5", help=f"one of: {', '.join(MODELS)}")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--entries", type=int, default=10, help="entries checked per parameter array")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=1e-6)
    parser.set_defaults(handler=gradcheck_command)
    register_report(subparsers)


def _register_train(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train a model and report its test accuracy")
    parser.add_argument("--model", default="lenet5", help=f"one of: {', '.join(MODELS)} (lenet5)")
    parser.add_argument("--dataset", default="mnist", help="mnist or fashion-mnist (mnist)")
    parser.add_argument("--epochs", type=int, help="passes over the training set (model default)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--optimizer", choices=("sgd", "momentum", "nesterov", "adam", "adamw"))
    parser.add_argument("--lr", type=float, help="learning rate (model default)")
    parser.add_argument("--momentum", type=float)
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--schedule", choices=("constant", "step", "exponential", "cosine", "lecun1998"))
    parser.add_argument("--augment-shift", type=int, metavar="PIXELS",
                        help="random translations of up to PIXELS while training (model default)")
    parser.add_argument("--validation", type=int, default=5000, help="training images held out (5000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="run directory (runs/<model>-<dataset>-<time>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    parser.add_argument("--data-dir", type=Path, help="directory with the dataset's IDX files")
    parser.add_argument("--train-limit", type=int, help="train on the first N images only")
    parser.add_argument("--test-limit", type=int, help="test on the first N images only")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--workers", type=_workers, default="auto", metavar="N",
                        help="processes each batch is split over, one per core; 'auto': "
                             f"the cores this process may use, at most {AUTO_WORKERS_MAX} (auto)")
    parser.set_defaults(handler=train_command)


# The most processes measured (benchmarks/bench.py, on a 2-core machine); beyond it is untested.
AUTO_WORKERS_MAX = 2


def _workers(text: str) -> int:
    if text == "auto":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(1, min(cores, AUTO_WORKERS_MAX))
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', found {text!r}")
    return value


def train_command(args) -> int:
    from .serialization import load_arrays
    from .train import Trainer, TrainConfig, TrainingError, load_splits, prepare_run_dir

    if args.resume:
        if args.out is None:
            raise TrainingError("--resume needs --out RUN_DIR, the run to continue")
        prepare_run_dir(args.out, resume=True, overwrite=False)
        _, metadata = load_arrays(args.out / "checkpoint.npz", kind="checkpoint")
        saved = metadata["hyperparameters"]
        config = TrainConfig(**{f.name: saved[f.name] for f in fields(TrainConfig) if f.name in saved})
        if args.epochs is not None:
            config.epochs = args.epochs
    else:
        get_spec(args.model)
        config = TrainConfig(
            model=args.model, dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size,
            optimizer=args.optimizer, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
            schedule=args.schedule, augment_shift=args.augment_shift, validation=args.validation, seed=args.seed,
            train_limit=args.train_limit, test_limit=args.test_limit,
        )
        config.resolved()  # reject bad settings before any data is loaded
        if args.out is None:
            args.out = Path("runs") / f"{args.model}-{args.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
        prepare_run_dir(args.out, resume=False, overwrite=args.overwrite)
    splits = load_splits(config, data_dir=args.data_dir)
    trainer = Trainer(config, args.out, splits, progress=not args.no_progress, workers=args.workers)
    if args.resume:
        trainer.restore()
        print(f"resuming {args.out} at epoch {trainer.epoch + 1}, step {trainer.step}", flush=True)
    else:
        c = trainer.config
        print(f"training {c.model} on {c.dataset}: {len(splits.x_train):,} images "
              f"({len(splits.x_val):,} held out for validation), {c.epochs} epochs, batch {c.batch_size}, "
              f"{c.optimizer} lr {c.lr:g} ({c.schedule}), seed {c.seed}, "
              f"{trainer.parallel.world} process{'es' if trainer.parallel.world > 1 else ''}", flush=True)
    try:
        trainer.fit()
    except KeyboardInterrupt:
        return 130
    metrics = trainer.finish(splits.class_names)
    print(f"run saved in {args.out}")
    print(f"test accuracy: {metrics['test_accuracy'] * 100:.2f}% "
          f"({metrics['test_count']:,} test images, error rate {metrics['test_error_rate'] * 100:.2f}%)")
    return 0


def _load_run(run_dir: Path):
    from .serialization import load_model

    if not run_dir.exists():
        raise Lenet5Error(f"{run_dir}: no such run directory")
    if not (run_dir / "model.npz").is_file():
        hint = " (it has a checkpoint: finish it with `lenet5 train --out DIR --resume`)" \
            if (run_dir / "checkpoint.npz").is_file() else ""
        raise Lenet5Error(f"{run_dir}: no model.npz, not a finished lenet5 run{hint}")
    return load_model(run_dir)


def preprocess_like(images_uint8: np.ndarray, metadata: dict) -> np.ndarray:
    from .data import preprocess

    prep = metadata["preprocessing"]
    return preprocess(images_uint8, method=prep["method"], pad=prep["pad"],
                      mean=prep.get("mean"), std=prep.get("std"))


def evaluate_command(args) -> int:
    from .data import load_dataset
    from .evaluation import evaluate, format_report

    model, metadata = _load_run(args.run_dir)
    dataset = load_dataset(metadata.get("dataset", "mnist"), data_dir=args.data_dir)
    x = preprocess_like(dataset.test_images, metadata)
    metrics = evaluate(model, x, dataset.test_labels)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        print(f"{metadata['architecture']} on {dataset.name} (run {args.run_dir})")
        print(format_report(metrics, list(dataset.class_names)))
    return 0


def predict_command(args) -> int:
    from .image import load_digit

    model, metadata = _load_run(args.run_dir)
    names = metadata.get("class_names") or [str(i) for i in range(10)]
    failures = 0
    for path in args.images:
        try:
            digit = load_digit(path)
        except Lenet5Error as error:
            print(f"lenet5: error: {error}", file=sys.stderr)
            failures += 1
            continue
        probabilities = model.predict_proba(preprocess_like(digit[None], metadata))[0]
        best = np.argsort(probabilities)[::-1][: max(1, args.top)]
        ranked = "  ".join(f"{names[i]} {probabilities[i] * 100:5.1f}%" for i in best)
        print(f"{path}: {names[best[0]]}   ({ranked})")
    return 1 if failures else 0


def summary_command(args) -> int:
    from .models import build_model

    spec = get_spec(args.model)
    model = build_model(args.model)
    print(f"{spec.name}: {spec.description}")
    print(f"input: {spec.input_shape} ({spec.preprocessing.method}, pad {spec.preprocessing.pad})\n")
    model.summary()
    return 0


def gradcheck_command(args) -> int:
    from .models import build_model
    from .nn import check_model

    spec = get_spec(args.model)
    model = build_model(args.model, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.batch_size,) + spec.input_shape)
    errors = check_model(model, x, seed=args.seed, max_entries=args.entries)
    worst = max(errors.values())
    width = max(map(len, errors))
    print(f"gradient check of {args.model} in float64: backward vs 5-point central differences "
          f"of sum(logits * G), random G, {args.entries} entries per array")
    for name, error in errors.items():
        verdict = "ok" if error < args.tolerance else "FAIL"
        print(f"  {name.ljust(width)}  {error:.2e}  {verdict}")
    passed = worst < args.tolerance
    print(f"{'passed' if passed else 'FAILED'}: largest relative error {worst:.2e} (tolerance {args.tolerance:g})")
    return 0 if passed else 1
