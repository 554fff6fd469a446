"""`lenet5 evaluate RUN_DIR`: a finished run's metrics on its test set."""

from __future__ import annotations

import json
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help="evaluate a trained run on its test set")
    parser.add_argument("run_dir", type=Path, help="a run directory written by `lenet5 train`")
    parser.add_argument("--data-dir", type=Path, help="directory with the dataset's IDX files")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.set_defaults(handler=evaluate_command)


def evaluate_command(args) -> int:
    from ..data import load_dataset
    from ..run.classifier import load
    from ..run.evaluation import format_report, metrics_of

    classifier = load(args.run_dir)
    metadata = classifier.metadata
    dataset = load_dataset(metadata.get("dataset", "mnist"), data_dir=args.data_dir)
    metrics = metrics_of(classifier.logits(dataset.test_images), dataset.test_labels, loss_fn=classifier.loss_fn)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        print(f"{metadata['architecture']} on {dataset.name} (run {args.run_dir})")
        print(format_report(metrics, list(dataset.class_names)))
    return 0
