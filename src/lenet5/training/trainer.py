"""The trainer: the epoch loop around one visible training step.

    optimizer.zero_grad()
    logits = engine.forward(x, distortion=distortion)  # the batch's training distortion, or None
    loss, dlogits = loss_fn.value_and_grad(logits, y)
    engine.backward(dlogits, input_grad=False)
    optimizer.step()

It knows the model only through that interface: the engine runs the model, the loss turns
logits into a value and a gradient, the optimiser updates the parameters they share. The
engine distorts the batch itself, inside its thread limits. Each epoch shuffles a
permutation, trains on every batch (the last partial one too), evaluates every validation
image, then writes a checkpoint and the history. Ctrl-C or SIGTERM writes a checkpoint
mid-epoch; resuming restores every random state, so a run stopped and continued ends with
the weights of a run left alone, bit for bit.
"""

from __future__ import annotations

import itertools
import signal
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, Lenet5Error, RunDirError
from ..files.weights import save_model
from ..files.writing import os_reason
from ..run.directory import CHECKPOINT, MODEL
from ..run.evaluation import evaluate
from ..run.preprocessing import preprocessing_metadata
from .checkpoint import Checkpoint, TrainingState, new_partial, save_checkpoint, versions
from .recipe import TrainConfig, seeds
from .run_dir import write_history, write_metrics, writing
from .splits import DataSplits


class TrainingError(Lenet5Error):
    """Training cannot go on: a non-finite loss, or a checkpoint that cannot be written."""


class Trainer:
    """Trains `model` through `engine` on preprocessed splits, writing into `run_dir`.

    Args:
        model: the reference model (`lenet5.nn.Sequential`) being trained; what is saved.
        optimizer: built on `model.parameters()`. schedule: `schedule(epoch) -> lr`.
        loss_fn: `value_and_grad(logits, labels) -> (loss, dlogits)`, e.g. SoftmaxCrossEntropy.
        engine: runs the model: `lenet5.fast.FastModel(model)` (`lenet5.run.engine.make_engine`).
        config: the run's settings (resolved here against the model's defaults): epochs,
            batch size, augmentation, seed; saved in every checkpoint.
        splits: the data (`lenet5.training.splits.load_splits`). run_dir: where files go.
        progress: a progress bar per epoch (tqdm, on a terminal only). log: where the epoch
            lines go (stdout). on_epoch: called with each epoch's history row and the run's
            epochs once its checkpoint is written (a sweep reports it to Optuna, and may stop
            the run there).
    """

    def __init__(self, model, optimizer, schedule, loss_fn, engine, *, config: TrainConfig,
                 splits: DataSplits, run_dir: str | Path, progress: bool = True, log=None, on_epoch=None) -> None:
        self.model, self.optimizer, self.schedule = model, optimizer, schedule
        self.loss_fn, self.engine = loss_fn, engine
        self.config = config.resolved()
        self.splits = splits
        images = len(splits.x_train)
        if images < 2:
            raise TrainingError(f"training needs at least 2 images, found {images}")
        if self.config.batch_size > images:
            # One batch of everything would not be mini-batch training, and its activations
            # can take gigabytes before anything fails.
            raise TrainingError(f"batch size {self.config.batch_size} is larger than the training set "
                                f"({images:,} images); use --batch-size {images} or less")
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.log = log or sys.stdout
        self.on_epoch = on_epoch
        stream_seeds = seeds(self.config)
        self.shuffle_rng = np.random.default_rng(stream_seeds.shuffle)
        self.augment_rng = np.random.default_rng(stream_seeds.augment)
        # With order "fixed" every epoch starts the shuffle stream here, so draws the same
        # permutation: LeCun et al.'s (1998) "constant random order".
        self.first_shuffle_state = self.shuffle_rng.bit_generator.state
        # SDLM's curvature is estimated before each pass on patterns drawn from a stream of
        # their own, kept in checkpoints, so a resumed run draws the same ones.
        self.curvature_rng = (np.random.default_rng(stream_seeds.curvature)
                              if self.config.optimizer == "sdlm" else None)
        self.state = TrainingState(epoch_start_shuffle_state=self.shuffle_rng.bit_generator.state)
        self._stop_requested = self._graceful = False

    # Where the run stands, read often enough to be named.
    @property
    def epoch(self) -> int:
        return self.state.epoch

    @property
    def step(self) -> int:
        return self.state.step

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.state.history

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT

    # -- the step ------------------------------------------------------------------------
    def train_step(self, x: np.ndarray, y: np.ndarray, distortion=None) -> tuple[float, np.ndarray]:
        """One optimisation step on the batch (x, y), distorted by `distortion` (a
        `lenet5.data.augment.Distortion`, which the engine applies); returns its mean loss
        and the logits."""
        self.optimizer.zero_grad()
        logits = self.engine.forward(x, distortion=distortion)
        loss, dlogits = self.loss_fn.value_and_grad(logits, y)
        self.engine.backward(dlogits, input_grad=False)
        self._check_finite(loss)  # a NaN must never reach the weights
        self.optimizer.step()
        return loss, logits

    def estimate_curvature(self) -> None:
        """SDLM's h, before a pass: the Gauss–Newton diagonal averaged over 500 training
        patterns (fewer if the set is smaller), drawn without replacement, unaugmented, on
        the reference model; it stays fixed for the pass (LeCun et al. 1998, appendix C)."""
        from ..zoo.lecun1998 import CURVATURE_SAMPLES, estimate_sdlm_curvature

        x, y = self.splits.x_train, self.splits.y_train
        index = np.sort(self.curvature_rng.choice(len(x), min(CURVATURE_SAMPLES, len(x)), replace=False))
        estimate_sdlm_curvature(self.model, self.loss_fn, x[index], y[index])
        self.optimizer.set_curvature()

    # -- the loop ------------------------------------------------------------------------
    def fit(self) -> list[dict[str, Any]]:
        """Train until `config.epochs`; returns the history (one row per epoch).

        Ctrl-C or SIGTERM asks for a stop: the step in progress finishes, a checkpoint is
        saved and KeyboardInterrupt is raised. Stopping only between steps keeps the
        checkpoint consistent (weights, optimiser and step counter all after the same step).
        A second Ctrl-C stops at once, keeping the last checkpoint written.
        """
        self._stop_requested = self._graceful = False
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                handlers[signum] = signal.signal(signum, self._request_stop)
        try:
            # Overflow on the way to a non-finite loss is reported once, in one line, by
            # _check_finite, not as NumPy warnings before it.
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                while self.state.epoch < self.config.epochs:
                    self._run_epoch()
        except KeyboardInterrupt:
            if self._graceful:
                self.save_checkpoint()
                print(f"\ninterrupted: checkpoint saved in {self.checkpoint_path} (epoch {self.epoch + 1}, "
                      f"step {self.step}); continue with --resume", file=sys.stderr)
            else:
                print(f"\nstopped at once; the last checkpoint written is kept in {self.checkpoint_path}",
                      file=sys.stderr)
            raise
        except TrainingError:
            raise
        except Lenet5Error as error:  # anything else that stops the run: say what is left and how to go on
            raise TrainingError(f"{error}; training stopped at epoch {self.epoch + 1}, step {self.step + 1} "
                                f"({self._kept()}; continue with lenet5 train --out {self.run_dir} --resume)") from None
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
        return self.history

    def _request_stop(self, signum, frame) -> None:
        if self._stop_requested:
            raise KeyboardInterrupt
        self._stop_requested = True

    def _run_epoch(self) -> None:
        from ..data import iterate_minibatches, num_batches
        from ..data.augment import Distortion

        config, splits, state = self.config, self.splits, self.state
        lr = self.optimizer.lr = self.schedule(state.epoch)
        distorting = config.augment_delay <= state.epoch < config.epochs - config.clean_epochs
        strength = config.augment_strength if distorting else 0.0
        if state.step == 0:
            if config.order == "fixed":
                self.shuffle_rng.bit_generator.state = self.first_shuffle_state
            state.epoch_start_shuffle_state = self.shuffle_rng.bit_generator.state
            state.partial = new_partial()
            if self.curvature_rng is not None:
                self.estimate_curvature()
        else:  # resuming mid-epoch: replay this epoch's permutation, skip the batches done
            self.shuffle_rng.bit_generator.state = state.epoch_start_shuffle_state
        batches = iterate_minibatches(splits.x_train, splits.y_train, config.batch_size, rng=self.shuffle_rng)
        partial = state.partial
        started = time.perf_counter() - partial["seconds"]
        self.model.train()
        bar = _progress_bar(num_batches(len(splits.x_train), config.batch_size, False), state.step,
                            f"epoch {state.epoch + 1}/{config.epochs}", self.progress)
        try:
            for x, y in itertools.islice(batches, state.step, None):
                distortion = Distortion.draw(config.augment, strength, self.augment_rng, splits.background)
                loss, logits = self.train_step(x, y, distortion)
                state.step += 1
                partial["loss_sum"] += loss * len(y)
                partial["correct"] += int((logits.argmax(axis=1) == y).sum())
                partial["seen"] += len(y)
                partial["seconds"] = time.perf_counter() - started
                if self._stop_requested:
                    self._graceful = True
                    raise KeyboardInterrupt
                if bar is not None:
                    bar.set_postfix(loss=f"{partial['loss_sum'] / partial['seen']:.4f}",
                                    acc=f"{partial['correct'] / partial['seen']:.4f}", refresh=False)
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        self._end_epoch(lr, time.perf_counter() - started)

    def _end_epoch(self, lr: float, seconds: float) -> None:
        state, partial = self.state, self.state.partial
        row = {
            "epoch": state.epoch + 1,
            "lr": lr,
            "loss": partial["loss_sum"] / max(partial["seen"], 1),
            "accuracy": partial["correct"] / max(partial["seen"], 1),
            "val_loss": None,
            "val_accuracy": None,
            "test_loss": None,
            "test_accuracy": None,
            "seconds": seconds,
            "images_per_second": partial["seen"] / seconds if seconds > 0 else None,
        }
        if len(self.splits.x_val):
            metrics = evaluate(self.engine, self.splits.x_val, self.splits.y_val, loss_fn=self.loss_fn)
            row["val_loss"], row["val_accuracy"] = metrics["loss"], metrics["accuracy"]
        if self.config.track_test:
            metrics = evaluate(self.engine, self.splits.x_test, self.splits.y_test, loss_fn=self.loss_fn)
            row["test_loss"], row["test_accuracy"] = metrics["loss"], metrics["accuracy"]
        state.history.append(row)
        state.epoch += 1
        state.step = 0
        state.partial = new_partial()
        self.save_checkpoint()
        try:
            write_history(self.run_dir, state.history)
        except RunDirError as error:  # the checkpoint, just written, holds the history too
            raise TrainingError(f"{error}; stopped after epoch {state.epoch} ({self._kept()}); "
                                "make room, then continue with --resume") from None
        print(_epoch_line(row, self.config.epochs), file=self.log, flush=True)
        if self.on_epoch is not None:  # after the checkpoint: a run stopped here resumes from it
            self.on_epoch(row, self.config.epochs)

    def _check_finite(self, loss: float) -> None:
        if np.isfinite(loss):
            # One pass over a flat optimiser's gradient buffer, not one per parameter.
            grads = getattr(self.optimizer, "gradient_arrays", None)
            grads = grads() if grads is not None else [p.grad for p in self.optimizer.parameters]
            if all(np.isfinite(grad).all() for grad in grads):
                return
            what = "gradient"
        else:
            what = "loss"
        raise TrainingError(f"non-finite {what} at epoch {self.epoch + 1}, step {self.step + 1}; stopped "
                            f"({self._kept()}); try a lower --lr")

    def _kept(self) -> str:
        """What a failure leaves to resume from, as a clause of its message."""
        if self.checkpoint_path.is_file():
            return f"the last good checkpoint, {self.checkpoint_path}, is kept"
        return "no checkpoint had been written yet"

    # -- files -----------------------------------------------------------------------------
    def file_metadata(self) -> dict[str, Any]:
        """What the checkpoint and model files say about the run besides its weights."""
        return {"dataset": self.config.dataset,
                "preprocessing": preprocessing_metadata(self.config.model, self.splits.mean, self.splits.std)}

    def save_checkpoint(self) -> None:
        try:
            save_checkpoint(self.checkpoint_path, model=self.model, optimizer=self.optimizer, config=self.config,
                            state=self.state, generators=self._generators(), metadata=self.file_metadata())
        except OSError as error:
            kept = "the last good checkpoint is kept" if self.checkpoint_path.is_file() \
                else "no checkpoint had been written yet"
            raise TrainingError(f"cannot write checkpoint {self.checkpoint_path}: {os_reason(error)}; {kept}") from None

    def restore(self) -> None:
        """Continue from `checkpoint.npz`: weights, optimiser, epoch, step, history, RNGs.

        Its step must lie within its epoch: the epoch would otherwise end at once, cut short
        without a word. Only this data (the checkpoint saves the settings, not the images)
        tells how many batches an epoch has.
        """
        from ..data import num_batches

        checkpoint = Checkpoint(self.checkpoint_path)
        step, batches = checkpoint.state.step, num_batches(len(self.splits.x_train), self.config.batch_size)
        if step > batches:
            raise CheckpointError(f"{self.checkpoint_path}: training step {step:,} is past the end of epoch "
                                  f"{checkpoint.state.epoch + 1}, which has {batches:,} batches "
                                  f"({len(self.splits.x_train):,} training images in batches of "
                                  f"{self.config.batch_size})")
        self.state = checkpoint.restore(self.model, self.optimizer, self._generators())
        self.model.train()

    def _generators(self) -> dict[str, np.random.Generator]:
        generators = {"shuffle": self.shuffle_rng, "augment": self.augment_rng}
        if self.curvature_rng is not None:
            generators["curvature"] = self.curvature_rng
        return generators

    def finish(self) -> dict[str, Any]:
        """Evaluate on every test image; write model.npz, model.json and metrics.json.

        A write that fails (a full disk) is a one-line TrainingError naming the file and why;
        the checkpoint holds everything, so `--resume` writes them again once there is room.
        """
        test = evaluate(self.engine, self.splits.x_test, self.splits.y_test, loss_fn=self.loss_fn)
        class_names = self.splits.class_names or [str(i) for i in range(len(test["per_class_accuracy"]))]
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
        try:
            with writing(f"{self.run_dir / MODEL} (and model.json)"):
                save_model(self.run_dir / MODEL, self.model, {
                    **self.file_metadata(),
                    "hyperparameters": asdict(self.config),
                    "versions": versions(),
                    "metrics": {k: v for k, v in metrics.items() if k != "confusion_matrix"},
                    "class_names": class_names,
                })
            write_metrics(self.run_dir, metrics)
        except RunDirError as error:
            raise TrainingError(f"{error}; training is done and {self._resume_hint()}") from None
        return metrics

    def _resume_hint(self) -> str:
        if self.checkpoint_path.is_file():
            return f"its checkpoint is kept: make room, then finish with `lenet5 train --out {self.run_dir} --resume`"
        return "no checkpoint was written"


def _progress_bar(total: int, done: int, desc: str, enabled: bool):
    """A tqdm bar on stderr when it is a terminal (in a log, the epoch line says it all);
    None where it is off or tqdm is not installed."""
    if not (enabled and sys.stderr.isatty()):
        return None
    try:
        from tqdm import tqdm
    except ModuleNotFoundError:
        return None
    return tqdm(total=total, initial=done, desc=desc, unit="batch", leave=False, file=sys.stderr,
                dynamic_ncols=True)


def _epoch_line(row: dict, epochs: int) -> str:
    text = f"epoch {row['epoch']:>2}/{epochs}  loss {row['loss']:.4f}  acc {row['accuracy'] * 100:6.2f}%"
    if row["val_accuracy"] is not None:
        text += f"  val_loss {row['val_loss']:.4f}  val_acc {row['val_accuracy'] * 100:6.2f}%"
    if row.get("test_accuracy") is not None:
        text += f"  test_acc {row['test_accuracy'] * 100:6.2f}%"
    rate = row["images_per_second"] or 0
    return text + f"  lr {row['lr']:.2e}  {row['seconds']:.1f}s ({rate:,.0f} img/s)"
