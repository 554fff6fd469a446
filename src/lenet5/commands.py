"""`lenet5 train | evaluate | predict | summary | gradcheck`: thin wrappers over the library."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from .arguments import (
    Retired, augment_strength, directory_path, momentum, non_negative_float, non_negative_int, positive_float,
    positive_int, seed, thread_count,
)
from .errors import Lenet5Error
from .models import MODELS, get_spec
from .text import one_line, shown_name


def register(subparsers) -> None:
    _register_train(subparsers)
    parser = subparsers.add_parser("evaluate", help="evaluate a trained run on its test set")
    parser.add_argument("run_dir", type=Path, help="a run directory written by `lenet5 train`")
    parser.add_argument("--data-dir", type=Path, help="directory with the dataset's IDX files")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.set_defaults(handler=evaluate_command)

    parser = subparsers.add_parser("predict", help="classify images of handwritten digits")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("images", type=Path, nargs="+", metavar="IMAGE",
                        help="PNG, JPEG, ... files, or directories (their image files, sorted)")
    parser.add_argument("--top", type=positive_int, default=3, help="how many classes to show (3)")
    parser.add_argument("--json", action="store_true", help="print one JSON document with an entry per image")
    parser.set_defaults(handler=predict_command)

    parser = subparsers.add_parser("summary", help="print a model's layers and parameter counts")
    parser.add_argument("--model", default="lenet5", help=f"one of: {', '.join(MODELS)}")
    parser.set_defaults(handler=summary_command)

    parser = subparsers.add_parser("gradcheck", help="check a model's backward pass by finite differences")
    parser.add_argument("--model", default="lenet5", help=f"one of: {', '.join(MODELS)}")
    parser.add_argument("--batch-size", type=positive_int, default=4)
    parser.add_argument("--entries", type=positive_int, default=10, help="entries checked per parameter array")
    parser.add_argument("--seed", type=seed, default=0)
    parser.add_argument("--tolerance", type=positive_float, default=1e-6)
    parser.set_defaults(handler=gradcheck_command)


def _register_train(subparsers) -> None:
    from .data.augment import KINDS
    from .recipe import OPTIMIZERS, ORDERS, SCHEDULES

    parser = subparsers.add_parser("train", help="train a model and report its test accuracy")
    # None for "not given": --resume refuses settings it would otherwise have to ignore.
    parser.add_argument("--model", help=f"one of: {', '.join(MODELS)} (lenet5)")
    parser.add_argument("--dataset", help="mnist or fashion-mnist (mnist)")
    parser.add_argument("--epochs", type=positive_int, help="passes over the training set (model default)")
    parser.add_argument("--batch-size", type=positive_int)
    parser.add_argument("--optimizer", choices=OPTIMIZERS)
    parser.add_argument("--lr", type=positive_float, help="learning rate (model default)")
    parser.add_argument("--momentum", type=momentum, help="in [0, 1) (0.9 for momentum and nesterov)")
    parser.add_argument("--weight-decay", type=non_negative_float)
    parser.add_argument("--schedule", choices=SCHEDULES)
    parser.add_argument("--mu", type=positive_float, help="SDLM's μ: the step is lr/(mu + h) (0.02)")
    parser.add_argument("--order", choices=ORDERS,
                        help="shuffle: a new order each epoch; fixed: one random order, kept (model default)")
    parser.add_argument("--augment", choices=KINDS,
                        help="distortions of the training images: integer shifts, affine maps, or affine "
                             "maps with elastic deformations (model default)")
    parser.add_argument("--augment-strength", type=augment_strength, metavar="X",
                        help="the distortions' ranges times X: 1 the usual (±2 pixels, ±10°, ...), 0 none "
                             "(model default)")
    parser.add_argument("--augment-delay", type=non_negative_int, metavar="EPOCHS",
                        help="train the first EPOCHS epochs on the images as drawn, distorting only after "
                             "them; 0: from the first step (model default)")
    parser.add_argument("--clean-epochs", type=non_negative_int, metavar="EPOCHS",
                        help="train the last EPOCHS epochs on the images as drawn again, so the model "
                             "ends on undistorted digits; 0: distort to the end (model default)")
    parser.add_argument("--validation", type=non_negative_int,
                        help="training images held out for validation (the model's default: 5000; 0 for "
                             "lenet5-1998, which trains on all 60,000 as the paper did)")
    parser.add_argument("--seed", type=seed, help="(0)")
    parser.add_argument("--out", type=directory_path, help="run directory (runs/<model>-<dataset>-<time>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    parser.add_argument("--data-dir", type=Path, help="directory with the dataset's IDX files")
    parser.add_argument("--train-limit", type=positive_int, help="train on the first N images only")
    parser.add_argument("--test-limit", type=positive_int, help="test on the first N images only")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--track-test", action="store_true",
                        help="evaluate the test set after every epoch, into the history (for curves; picks nothing)")
    parser.add_argument("--backend", choices=("compiled", "numpy"),
                        help="the fast engine's kernels: compiled (Numba, threaded; the default where Numba "
                             "is installed) or numpy (with --resume, the run's own)")
    parser.add_argument("--threads", type=thread_count, metavar="N",
                        help="threads of the compiled kernels (default: the cores this process may use); "
                             "results do not depend on it")
    # Named so that a script still passing it learns why in one line, not "unrecognized arguments".
    parser.add_argument("--workers", action=Retired,
                        reason="training runs in one process, its compiled kernels on threads (--threads N)")
    parser.set_defaults(handler=train_command)


# What a run was started with; a resumed run keeps them (its checkpoint holds them).
RUN_SETTINGS = ("--model", "--dataset", "--batch-size", "--optimizer", "--lr", "--momentum", "--weight-decay",
                "--schedule", "--mu", "--order", "--augment", "--augment-strength", "--augment-delay",
                "--clean-epochs", "--validation", "--seed", "--train-limit", "--test-limit")


def _field(option: str) -> str:
    """The TrainConfig field (and argparse destination) of a command-line option."""
    return option.lstrip("-").replace("-", "_")


def train_command(args) -> int:
    """Build the model, its optimiser and the engine that runs it; hand them to a Trainer."""
    from .checkpoint import Checkpoint
    from .engine import default_backend, make_engine
    from .fast.compiled import available as compiled_available
    from .models import build_model
    from .recipe import TrainConfig, make_optimizer, make_schedule, saved_processes, seeds
    from .rundir import CHECKPOINT, claim_run_dir, prepare_run_dir
    from .splits import load_splits
    from .trainer import Trainer

    if args.resume:
        if args.out is None:
            raise Lenet5Error("--resume needs --out RUN_DIR, the run to continue")
    else:
        given = {_field(option): getattr(args, _field(option)) for option in RUN_SETTINGS + ("--epochs",)}
        given = {name: value for name, value in given.items() if value is not None}
        config = TrainConfig(  # what was not given takes TrainConfig's and the model's defaults
            **given, track_test=args.track_test,
            backend=args.backend or default_backend(),
        ).resolved()  # bad settings are rejected before any directory is made
        if config.backend == "compiled" and not compiled_available():
            raise Lenet5Error("--backend compiled needs Numba and SciPy: pip install 'lenet5[fast]' (or use --backend numpy)")
        if args.backend is None and config.backend == "numpy":
            print("lenet5: Numba or SciPy is missing, so this run trains on the NumPy steps; "
                  "pip install 'lenet5[fast]' for the compiled kernels", file=sys.stderr)
        if args.out is None:
            args.out = Path("runs") / f"{config.model}-{config.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    # Locked from here to the last file written. An old run in --out stays untouched while the
    # data loads and the model is built, and is set aside only just before training starts.
    with claim_run_dir(args.out, resume=args.resume, overwrite=args.overwrite):
        if args.resume:
            checkpoint = Checkpoint(args.out / CHECKPOINT)
            config = checkpoint.config
            changed = [option for option in RUN_SETTINGS + ("--backend",)
                       if getattr(args, _field(option)) not in (None, getattr(config, _field(option)))]
            if changed:
                raise Lenet5Error(f"--resume continues {args.out} with the settings it was started with; "
                                  f"{', '.join(changed)} cannot change them (--epochs can)")
            if args.epochs is not None:
                config.epochs = args.epochs
            processes = saved_processes(checkpoint.metadata["hyperparameters"])
            if processes > 1:
                print(f"lenet5: {args.out} was trained on {processes} processes, which were retired: it continues "
                      f"in one process, so its results will not be bit-identical to an uninterrupted "
                      f"{processes}-process run (the processes summed gradients in another order)",
                      file=sys.stderr, flush=True)
            if args.track_test:
                config.track_test = True
            config = config.resolved()
            if config.backend == "compiled" and not compiled_available():
                raise Lenet5Error(f"{args.out} was trained on the compiled kernels, which need Numba and SciPy: "
                                  "pip install 'lenet5[fast]'")
        splits = load_splits(config, data_dir=args.data_dir)
        model = build_model(config.model, seed=seeds(config).init)
        optimizer = make_optimizer(config, model.parameters())
        engine = make_engine(model, config.backend, args.threads)
        trainer = Trainer(model, optimizer, make_schedule(config), get_spec(config.model).make_loss(), engine,
                          config=config, splits=splits, run_dir=args.out, progress=not args.no_progress)
        if args.resume:
            trainer.restore()
            print(f"resuming {args.out} at epoch {trainer.epoch + 1}, step {trainer.step} ({_engine_words(engine)})",
                  flush=True)
        else:
            prepare_run_dir(args.out, resume=False, overwrite=args.overwrite)  # back if no checkpoint comes
            held_out = (f"{len(splits.x_val):,} held out for validation" if len(splits.x_val)
                        else "none held out for validation")
            print(f"training {config.model} on {config.dataset}: {len(splits.x_train):,} images ({held_out}), "
                  f"{config.epochs} epoch{'s' if config.epochs != 1 else ''}, "
                  f"batch {config.batch_size}, {config.optimizer} lr {config.lr:g} ({config.schedule}), "
                  f"{_distortions(config)}, seed {config.seed}, {_engine_words(engine)}", flush=True)
        try:
            trainer.fit()
            metrics = trainer.finish()
        except KeyboardInterrupt:
            return 130
        finally:
            engine.close()
    print(f"run saved in {args.out}")
    print(f"test accuracy: {metrics['test_accuracy'] * 100:.2f}% "
          f"({metrics['test_count']:,} test images, error rate {metrics['test_error_rate'] * 100:.2f}%)")
    return 0


def _engine_words(engine) -> str:
    """How the run is computed, for its first line: "compiled kernels on 2 threads" or
    "numpy steps, BLAS on 2 threads"."""
    threads = f"{engine.threads} thread{'s' if engine.threads > 1 else ''}"
    if engine.backend.name == "compiled":
        return f"compiled kernels on {threads}"
    return f"numpy steps, BLAS on {threads}"


def _distortions(config) -> str:
    if config.augment == "none" or config.augment_strength == 0:
        return "no distortions"
    distorted = config.epochs - config.clean_epochs - config.augment_delay
    if distorted <= 0:  # a short run never reaches them: do not announce them
        return f"no distortions (its {config.augment} ones start after epoch {config.augment_delay})"
    delay = f", after epoch {config.augment_delay}" if config.augment_delay else ""
    clean = f", none in the last {config.clean_epochs}" if config.clean_epochs else ""
    return f"{config.augment} distortions (strength {config.augment_strength:g}{delay}{clean})"


def evaluate_command(args) -> int:
    from .data import load_dataset
    from .engine import make_engine
    from .evaluation import evaluate, format_report
    from .rundir import load_run, preprocess_like

    model, metadata = load_run(args.run_dir)
    dataset = load_dataset(metadata.get("dataset", "mnist"), data_dir=args.data_dir)
    metrics = evaluate(make_engine(model), preprocess_like(dataset.test_images, metadata), dataset.test_labels,
                       loss_fn=get_spec(metadata["architecture"]).make_loss(), where=str(args.run_dir))
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        print(f"{metadata['architecture']} on {dataset.name} (run {args.run_dir})")
        print(format_report(metrics, list(dataset.class_names)))
    return 0


def predict_command(args) -> int:
    """Classify each image (a directory: its image files); one batched forward pass for all.

    An image that cannot be read is reported in one line and the others are still classified;
    the exit status is then 1.
    """
    from .classifier import load, ranked
    from .image import prepare_digit

    classifier = load(args.run_dir)
    names = classifier.class_names
    paths, skipped, failures = _image_paths(args.images)
    digits, errors = {}, {}
    for path in paths:
        try:
            digits[path] = prepare_digit(path)
        except Lenet5Error as error:
            errors[path] = str(error)
            print(f"lenet5: error: {_naming(path, str(error))}", file=sys.stderr)
    read = list(digits)
    rows = classifier.probabilities(np.stack([digits[path].pixels for path in read])) if read else []
    probabilities = dict(zip(read, rows))
    top = min(args.top, len(names))
    entries = []
    for path in paths:
        if path in errors:
            entries.append({"file": str(path), "error": errors[path]})
            continue
        digit, row = digits[path], probabilities[path]
        best = ranked(row, top)
        entries.append({"file": str(path), "label": int(best[0]), "name": names[best[0]],
                        "probabilities": [float(p) for p in row],
                        "top": [{"label": int(i), "name": names[i], "probability": float(row[i])} for i in best],
                        "preprocessing": {"verdict": digit.verdict, "confidence": round(digit.confidence, 3)}})
    if args.json:
        print(json.dumps({"run": str(args.run_dir), "model": classifier.name, "images": entries,
                          "skipped": [str(path) for path in skipped]}, indent=2))
    else:
        for entry in entries:
            if "error" in entry:
                continue
            ranked = "  ".join(f"{item['name']} {item['probability'] * 100:5.1f}%" for item in entry["top"])
            verdict = entry["preprocessing"]
            doubt = "" if verdict["verdict"] == "one digit" else \
                f"   [preprocessing: {verdict['verdict']}, confidence {verdict['confidence']:.2f}]"
            print(f"{shown_name(entry['file'])}: {entry['name']}   ({ranked}){doubt}")
    return 1 if errors or failures else 0


def _naming(path: Path, message: str) -> str:
    """An image's error on one line, its file named as the result lines name it."""
    if message.startswith(str(path)):
        message = shown_name(path) + message[len(str(path)):]
    return one_line(message)


def _image_paths(arguments: list[Path]) -> tuple[list[Path], list[Path], int]:
    """(images to classify, files skipped, directories without images): a file argument as
    given (a wrong one is reported when read); a directory's image files, sorted, with a note
    on stderr for each other file."""
    from .image import image_extensions

    extensions = image_extensions()
    paths, skipped, failures = [], [], 0
    for argument in arguments:
        if not argument.is_dir():
            paths.append(argument)
            continue
        found = 0
        for entry in sorted(argument.iterdir()):
            if entry.is_file() and entry.suffix.lower() in extensions:
                paths.append(entry)
                found += 1
            else:
                skipped.append(entry)
                kind = "a directory" if entry.is_dir() else "not an image file"
                print(f"lenet5: note: skipped {shown_name(entry)} ({kind})", file=sys.stderr)
        if not found:
            print(f"lenet5: error: {shown_name(argument)}: no image files in this directory", file=sys.stderr)
            failures += 1
    return paths, skipped, failures


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
