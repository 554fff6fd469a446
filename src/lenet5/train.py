"""The trainer: mini-batch training with validation, checkpoints every epoch, and resume.

It knows the model only through its interface (forward, backward, parameters, train/eval,
state_dict), so any `Sequential` trains. A run directory holds everything a run writes:

    model.npz / model.json    the final weights and what they are (architecture, metrics...)
    checkpoint.npz            model, optimiser, epoch, step and RNG states (after each epoch,
                              and on Ctrl-C or SIGTERM mid-epoch)
    history.csv / .json       one row per epoch
    metrics.json              the final test metrics, `test_accuracy` among them

Resuming restores every random state, so an interrupted run continued with `resume=True`
ends with the same weights, bit for bit, as the run left alone.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import platform
import signal
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import Lenet5Error
from .evaluation import evaluate
from .fileio import atomic_write_text
from .models import build_model, get_spec
from .nn import SGD, Adam, AdamW, DataParallel
from .nn.schedules import ConstantLR, CosineLR, EpochListLR, ExponentialLR, StepLR
from .nn.sequential import _generators
from .progress import ProgressBar
from .serialization import build_from_metadata, load_arrays, save_arrays, save_model

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")
SCHEDULES = ("constant", "step", "exponential", "cosine", "lecun1998")


class TrainingError(Lenet5Error):
    """Training cannot go on (non-finite loss, unwritable run directory)."""


@dataclass
class TrainConfig:
    """Everything that decides a run; saved in the checkpoint so `--resume` needs nothing else.

    `None` for epochs, batch_size, optimizer, lr or schedule takes the model's default.
    """

    model: str = "lenet5"
    dataset: str = "mnist"
    epochs: int | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    schedule: str | None = None
    augment_shift: int | None = None
    validation: int = 5000
    seed: int = 0
    train_limit: int | None = None  # use only the first N training images (tests, quick looks)
    test_limit: int | None = None

    def resolved(self) -> "TrainConfig":
        defaults = get_spec(self.model).defaults
        values = asdict(self)
        for name in ("epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "schedule",
                     "augment_shift"):
            if values[name] is None:
                values[name] = getattr(defaults, name)
        config = TrainConfig(**values)
        config.validate()
        return config

    def validate(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise Lenet5Error(f"unknown optimizer {self.optimizer!r}; known: {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise Lenet5Error(f"unknown schedule {self.schedule!r}; known: {', '.join(SCHEDULES)}")
        for name in ("epochs", "batch_size"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise Lenet5Error(f"{name} must be a positive integer, found {getattr(self, name)!r}")
        if not self.lr > 0:
            raise Lenet5Error(f"lr must be > 0, found {self.lr!r}")
        if not (isinstance(self.augment_shift, int) and 0 <= self.augment_shift <= 8):
            raise Lenet5Error(f"augment_shift must be an integer in 0..8, found {self.augment_shift!r}")
        if self.validation < 0:
            raise Lenet5Error(f"validation must be >= 0, found {self.validation!r}")


@dataclass
class DataSplits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str] = field(default_factory=list)
    mean: float = 0.0  # the dataset's pixel statistics, for `standardize`
    std: float = 1.0
    background: float = 0.0  # a blank pixel after preprocessing (what augmentation pads with)


def load_splits(config: TrainConfig, data_dir=None) -> DataSplits:
    """The dataset, preprocessed as the model expects, split into train / validation / test."""
    from .data import load_dataset, preprocess, train_validation_split

    spec = get_spec(config.model)
    dataset = load_dataset(config.dataset, data_dir=data_dir)
    prep = dict(method=spec.preprocessing.method, pad=spec.preprocessing.pad, mean=dataset.mean, std=dataset.std)
    train_images, train_labels = dataset.train_images, dataset.train_labels
    if config.train_limit:
        train_images, train_labels = train_images[: config.train_limit], train_labels[: config.train_limit]
    test_images, test_labels = dataset.test_images, dataset.test_labels
    if config.test_limit:
        test_images, test_labels = test_images[: config.test_limit], test_labels[: config.test_limit]
    if config.validation >= len(train_images):
        raise Lenet5Error(
            f"validation set of {config.validation} leaves no training images (of {len(train_images)})"
        )
    x_train, y_train, x_val, y_val = train_validation_split(
        train_images, train_labels, config.validation, seed=config.seed
    )
    return DataSplits(
        preprocess(x_train, **prep), np.asarray(y_train, np.int64),
        preprocess(x_val, **prep), np.asarray(y_val, np.int64),
        preprocess(test_images, **prep), np.asarray(test_labels, np.int64),
        list(dataset.class_names), float(dataset.mean), float(dataset.std),
        float(preprocess(np.zeros((1, 1, 1), np.uint8), **{**prep, "pad": 0})[0, 0, 0, 0]),
    )


def make_optimizer(config: TrainConfig, parameters):
    decay = config.weight_decay or 0.0
    if config.optimizer == "sgd":
        return SGD(parameters, lr=config.lr, weight_decay=decay)
    if config.optimizer in ("momentum", "nesterov"):
        return SGD(parameters, lr=config.lr, momentum=config.momentum or 0.9,
                   nesterov=config.optimizer == "nesterov", weight_decay=decay)
    if config.optimizer == "adamw":
        return AdamW(parameters, lr=config.lr, weight_decay=decay)
    return Adam(parameters, lr=config.lr, weight_decay=decay)


def make_schedule(config: TrainConfig):
    if config.schedule == "step":
        return StepLR(config.lr, step_size=max(1, config.epochs // 3), gamma=0.1)
    if config.schedule == "exponential":
        return ExponentialLR(config.lr, gamma=0.9)
    if config.schedule == "cosine":
        return CosineLR(config.lr, total_epochs=config.epochs, min_lr=config.lr * 0.01)
    if config.schedule == "lecun1998":
        # The paper's rates are for its stochastic diagonal Levenberg-Marquardt method; here
        # they keep their ratios, scaled so the first equals the requested lr.
        rates = EpochListLR.lecun_1998().rates
        return EpochListLR([config.lr * rate / rates[0] for rate in rates])
    return ConstantLR(config.lr)


class Trainer:
    """Trains `config.model` on preprocessed splits, writing into `run_dir`.

    Args:
        config: the run's settings (resolved against the model's defaults).
        run_dir: where files go. splits: the data (from `load_splits`).
        progress: show a progress bar per epoch. log: where epoch lines go (stdout).
        workers: processes each batch is split over (`nn.DataParallel`), one per core;
            the results equal one process's up to rounding.
    """

    def __init__(self, config: TrainConfig, run_dir: str | Path, splits: DataSplits,
                 progress: bool = True, log=None, workers: int = 1) -> None:
        self.config = config.resolved()
        self.run_dir = Path(run_dir)
        self.splits = splits
        self.progress = progress
        self.log = log or sys.stdout
        init_seed, shuffle_seed, augment_seed = np.random.SeedSequence(self.config.seed).generate_state(3)
        self.model = build_model(self.config.model, seed=int(init_seed))
        self.optimizer = make_optimizer(self.config, self.model.parameters())
        self.workers = workers
        self.parallel = DataParallel(self.model, workers)
        self.schedule = make_schedule(self.config)
        self.shuffle_rng = np.random.default_rng(int(shuffle_seed))
        self.augment_rng = np.random.default_rng(int(augment_seed))
        self.history: list[dict[str, Any]] = []
        self.epoch = 0  # the epoch in progress (0-based)
        self.step = 0  # batches of it already done
        self.partial = {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
        self.epoch_start_shuffle_state = self.shuffle_rng.bit_generator.state
        self._stop_requested = self._graceful = False

    def preprocessing_metadata(self) -> dict[str, Any]:
        return {**asdict(self.model.spec.preprocessing), "mean": self.splits.mean, "std": self.splits.std}

    # -- checkpoints -------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint.npz"

    def save_checkpoint(self) -> None:
        arrays = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        arrays.update({f"optimizer.{k}": v for k, v in self.optimizer.state_dict().items()})
        metadata = {
            "kind": "checkpoint",
            "architecture": self.config.model,
            "dataset": self.config.dataset,
            "preprocessing": self.preprocessing_metadata(),
            "hyperparameters": asdict(self.config),
            "versions": _versions(),
            "training": {
                "epoch": self.epoch,
                "step": self.step,
                "partial": self.partial,
                "history": self.history,
                "epoch_start_shuffle_state": _jsonable_state(self.epoch_start_shuffle_state),
                "shuffle_state": _jsonable_state(self.shuffle_rng.bit_generator.state),
                "augment_state": _jsonable_state(self.augment_rng.bit_generator.state),
                "layer_rng_states": [_jsonable_state(g.bit_generator.state) for g in _generators(self.model)],
            },
        }
        try:
            save_arrays(self.checkpoint_path, arrays, metadata)
        except OSError as error:
            raise TrainingError(
                f"cannot write checkpoint {self.checkpoint_path}: {error.strerror or error}; "
                "the last good checkpoint is kept"
            ) from None

    def restore(self) -> None:
        """Continue from `checkpoint.npz`: weights, optimiser, epoch, step, history, RNGs."""
        arrays, metadata = load_arrays(self.checkpoint_path, kind="checkpoint")
        where = str(self.checkpoint_path)
        saved_config = TrainConfig(**{
            f.name: metadata["hyperparameters"].get(f.name, getattr(TrainConfig, f.name, None))
            for f in fields(TrainConfig)
        })
        if saved_config.model != self.config.model:
            raise TrainingError(f"{where}: checkpoint is for model {saved_config.model!r}, not {self.config.model!r}")
        self.model = build_from_metadata(arrays, metadata, where, prefix="model.")
        self.model.train()
        self.parallel.close()
        self.parallel = DataParallel(self.model, self.workers)
        self.optimizer = make_optimizer(self.config, self.model.parameters())
        self.optimizer.load_state_dict({k[len("optimizer."):]: v for k, v in arrays.items() if k.startswith("optimizer.")})
        training = metadata["training"]
        self.epoch, self.step = int(training["epoch"]), int(training["step"])
        self.partial = dict(training["partial"])
        self.history = list(training["history"])
        self.epoch_start_shuffle_state = training["epoch_start_shuffle_state"]
        self.shuffle_rng.bit_generator.state = training["shuffle_state"]
        self.augment_rng.bit_generator.state = training["augment_state"]
        generators = _generators(self.model)
        if len(generators) != len(training["layer_rng_states"]):
            raise TrainingError(f"{where}: random states do not match the model's layers")
        for generator, state in zip(generators, training["layer_rng_states"]):
            generator.bit_generator.state = state

    # -- the loop ----------------------------------------------------------------------
    def fit(self) -> list[dict[str, Any]]:
        """Train until `config.epochs`.

        Ctrl-C or SIGTERM asks for a stop; the step in progress finishes, a checkpoint is
        saved and KeyboardInterrupt is raised. Stopping only between steps keeps the
        checkpoint consistent (weights, optimiser and step counter all after the same step).
        A second Ctrl-C stops at once, keeping the last checkpoint written.
        """
        self._stop_requested = self._graceful = False
        handlers = {}
        if _in_main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                handlers[signum] = signal.signal(signum, self._request_stop)
        try:
            while self.epoch < self.config.epochs:
                self._run_epoch()
        except KeyboardInterrupt:
            if self._graceful:
                self.save_checkpoint()
                print(f"\ninterrupted: checkpoint saved in {self.checkpoint_path} "
                      f"(epoch {self.epoch + 1}, step {self.step}); continue with --resume", file=sys.stderr)
            else:
                print(f"\nstopped at once; the last checkpoint written is kept in {self.checkpoint_path}",
                      file=sys.stderr)
            raise
        finally:
            self.parallel.close()
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
        return self.history

    def _request_stop(self, signum, frame) -> None:
        if self._stop_requested:
            raise KeyboardInterrupt
        self._stop_requested = True

    def _run_epoch(self) -> None:
        config, splits = self.config, self.splits
        from .data import iterate_minibatches, num_batches
        from .data.augment import random_shift

        lr = self.schedule(self.epoch)
        self.optimizer.lr = lr
        if self.step == 0:
            self.epoch_start_shuffle_state = self.shuffle_rng.bit_generator.state
            self.partial = {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
        else:  # resuming mid-epoch: replay this epoch's permutation, skip the done batches
            self.shuffle_rng.bit_generator.state = self.epoch_start_shuffle_state
        total = num_batches(len(splits.x_train), config.batch_size, False)
        batches = iterate_minibatches(splits.x_train, splits.y_train, config.batch_size, rng=self.shuffle_rng)
        self.model.train()
        started = time.perf_counter() - self.partial["seconds"]
        # Only live on a terminal: in a log, the epoch line below already says it all.
        with ProgressBar(total, desc=f"epoch {self.epoch + 1}/{config.epochs}", unit="batch",
                         enabled=self.progress and sys.stderr.isatty()) as bar:
            bar.update(self.step)
            for x, y in itertools.islice(batches, self.step, None):
                if config.augment_shift:
                    x = random_shift(x, config.augment_shift, self.augment_rng, self.splits.background)
                self.optimizer.zero_grad()
                loss, logits = self.parallel.train_step(x, y)  # in this process alone with workers=1
                if not np.isfinite(loss):
                    self._non_finite("loss")
                if not all(np.isfinite(p.grad).all() for p in self.optimizer.parameters):
                    self._non_finite("gradient")
                self.optimizer.step()
                self.step += 1
                self.partial["loss_sum"] += loss * len(y)
                self.partial["correct"] += int((logits.argmax(axis=1) == y).sum())
                self.partial["seen"] += len(y)
                self.partial["seconds"] = time.perf_counter() - started
                if self._stop_requested:
                    self._graceful = True
                    raise KeyboardInterrupt
                if bar.enabled:
                    bar.update(1, loss=f"{self.partial['loss_sum'] / self.partial['seen']:.4f}",
                               acc=f"{self.partial['correct'] / self.partial['seen']:.4f}",
                               img_s=f"{self.partial['seen'] / self.partial['seconds']:.0f}")
        seconds = time.perf_counter() - started
        row = {
            "epoch": self.epoch + 1,
            "lr": lr,
            "loss": self.partial["loss_sum"] / max(self.partial["seen"], 1),
            "accuracy": self.partial["correct"] / max(self.partial["seen"], 1),
            "val_loss": None,
            "val_accuracy": None,
            "seconds": seconds,
            "images_per_second": self.partial["seen"] / seconds if seconds > 0 else None,
        }
        if len(splits.x_val):
            metrics = evaluate(self.parallel, splits.x_val, splits.y_val)
            row["val_loss"], row["val_accuracy"] = metrics["loss"], metrics["accuracy"]
        self.history.append(row)
        self.epoch += 1
        self.step = 0
        self.partial = {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
        self.save_checkpoint()
        self.write_history()
        print(_epoch_line(row, config.epochs), file=self.log, flush=True)

    def _non_finite(self, what: str) -> None:
        raise TrainingError(
            f"non-finite {what} at epoch {self.epoch + 1}, step {self.step + 1}; stopped "
            f"(the last good checkpoint, {self.checkpoint_path}, is kept); try a lower --lr"
        )

    def write_history(self) -> None:
        columns = ["epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy", "seconds", "images_per_second"]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in self.history:
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in columns})
        atomic_write_text(self.run_dir / "history.csv", buffer.getvalue())
        atomic_write_text(self.run_dir / "history.json", json.dumps(self.history, indent=2) + "\n")

    def finish(self, class_names: list[str]) -> dict[str, Any]:
        """Evaluate on the test set and write model.npz, model.json and metrics.json."""
        try:
            test = evaluate(self.parallel, self.splits.x_test, self.splits.y_test)
        finally:
            self.parallel.close()
        metrics = {
            "test_accuracy": test["accuracy"],
            "test_error_rate": test["error_rate"],
            "test_loss": test["loss"],
            "test_count": test["count"],
            "per_class_accuracy": dict(zip(class_names, test["per_class_accuracy"])),
            "confusion_matrix": test["confusion_matrix"],
            "epochs": self.epoch,
            "train_seconds": sum(row["seconds"] for row in self.history),
        }
        if self.history:
            last = self.history[-1]
            metrics.update(train_loss=last["loss"], train_accuracy=last["accuracy"],
                           val_loss=last["val_loss"], val_accuracy=last["val_accuracy"])
        save_model(self.run_dir / "model.npz", self.model, {
            "dataset": self.config.dataset,
            "preprocessing": self.preprocessing_metadata(),
            "hyperparameters": asdict(self.config),
            "versions": _versions(),
            "metrics": {k: v for k, v in metrics.items() if k != "confusion_matrix"},
            "class_names": class_names,
        })
        atomic_write_text(self.run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        return metrics


def prepare_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Create the run directory, refusing to mix two runs in one."""
    if resume:
        if not (run_dir / "checkpoint.npz").is_file():
            raise TrainingError(f"cannot resume: {run_dir} holds no checkpoint.npz")
        return
    if (run_dir / "checkpoint.npz").exists() or (run_dir / "model.npz").exists():
        if not overwrite:
            raise TrainingError(
                f"{run_dir} already holds a run; use --resume to continue it, --overwrite to replace it, "
                "or --out to choose another directory"
            )
        for name in ("checkpoint.npz", "model.npz", "model.json", "history.csv", "history.json", "metrics.json"):
            (run_dir / name).unlink(missing_ok=True)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise TrainingError(f"cannot write to run directory {run_dir}: {error.strerror or error}") from None


def _epoch_line(row: dict, epochs: int) -> str:
    text = (f"epoch {row['epoch']:>2}/{epochs}  loss {row['loss']:.4f}  acc {row['accuracy'] * 100:6.2f}%")
    if row["val_accuracy"] is not None:
        text += f"  val_loss {row['val_loss']:.4f}  val_acc {row['val_accuracy'] * 100:6.2f}%"
    rate = row["images_per_second"] or 0
    return text + f"  lr {row['lr']:.2e}  {row['seconds']:.1f}s ({rate:,.0f} img/s)"


def _versions() -> dict[str, str]:
    return {"lenet5": __version__, "numpy": np.__version__, "python": platform.python_version()}


def _jsonable_state(state: dict) -> dict:
    # PCG64 states hold 128-bit ints; JSON keeps arbitrary-precision ints exactly.
    return json.loads(json.dumps(state))


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


