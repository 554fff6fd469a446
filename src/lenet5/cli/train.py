"""`lenet5 train`: build the model, its optimiser and engine from the options, and train it."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..errors import Lenet5Error
from ..zoo.lecun1998 import SDLM_MU
from ..zoo.models import MODELS, RBF_LOSSES, get_spec
from .arguments import (
    Retired, augment_strength, directory_path, momentum, non_negative_float, non_negative_int, positive_float,
    positive_int, seed, thread_count
)


def register(subparsers) -> None:
    from ..data.augment import KINDS
    from ..training.recipe import OPTIMIZERS, ORDERS, SCHEDULES

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
    parser.add_argument("--mu", type=positive_float, help=f"SDLM's μ: the step is lr/(mu + h) ({SDLM_MU:g})")
    rbf_models = ", ".join(name for name, spec in MODELS.items() if spec.loss in RBF_LOSSES)
    parser.add_argument("--loss", choices=RBF_LOSSES,
                        help=f"for an RBF output ({rbf_models}), LeCun et al. 1998's criterion (§III-B): map, "
                             "the correct class's penalty against the others', or mle, the correct class's "
                             "penalty alone (the model's own: map)")
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
                "--schedule", "--mu", "--loss", "--order", "--augment", "--augment-strength", "--augment-delay",
                "--clean-epochs", "--validation", "--seed", "--train-limit", "--test-limit")


def _field(option: str) -> str:
    """The TrainConfig field (and argparse destination) of a command-line option."""
    return option.lstrip("-").replace("-", "_")


def train_command(args, on_epoch=None) -> int:
    """Build the model, its optimiser and the engine that runs it; hand them to a Trainer.
    `on_epoch`: see `Trainer` (a sweep's trials pass one)."""
    from ..fast.compiled import available as compiled_available
    from ..run.directory import CHECKPOINT
    from ..run.engine import default_backend, make_engine
    from ..training.checkpoint import Checkpoint
    from ..training.recipe import TrainConfig, make_optimizer, make_schedule, saved_processes, seeds
    from ..training.run_dir import claim_run_dir, prepare_run_dir
    from ..training.splits import load_splits
    from ..training.trainer import Trainer
    from ..zoo.models import build_model

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
        loss_fn = get_spec(config.model).make_loss(config.loss)
        trainer = Trainer(model, optimizer, make_schedule(config), loss_fn, engine, config=config, splits=splits,
                          run_dir=args.out, progress=not args.no_progress, on_epoch=on_epoch)
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
                  f"{_chosen_loss(config)}{_distortions(config)}, seed {config.seed}, {_engine_words(engine)}",
                  flush=True)
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


def _chosen_loss(config) -> str:
    """"mle loss, " for a run that chose a loss other than its model's own; "" otherwise."""
    return "" if config.loss == get_spec(config.model).loss else f"{config.loss} loss, "


def _distortions(config) -> str:
    if config.augment == "none" or config.augment_strength == 0:
        return "no distortions"
    distorted = config.epochs - config.clean_epochs - config.augment_delay
    if distorted <= 0:  # a short run never reaches them: do not announce them
        return f"no distortions (its {config.augment} ones start after epoch {config.augment_delay})"
    delay = f", after epoch {config.augment_delay}" if config.augment_delay else ""
    clean = f", none in the last {config.clean_epochs}" if config.clean_epochs else ""
    return f"{config.augment} distortions (strength {config.augment_strength:g}{delay}{clean})"
