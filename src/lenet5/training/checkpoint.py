"""The training state on disk: `checkpoint.npz`, arrays plus JSON metadata, never pickle.

A checkpoint holds everything a run needs to go on as if it had never stopped:

    arrays    model.<name>      the model's state dict (parameters and buffers)
              optimizer.<name>  the optimiser's state (steps, lr, moments or velocities)
    metadata  hyperparameters   the run's TrainConfig
              training          epoch, step, the epoch's partial sums, the history, and the
                                state of every random generator: the shuffle and the
                                augmentation streams, and each Dropout layer's, by name

Random states are bit-generator state dicts; their 128-bit integers survive JSON exactly.
"""

from __future__ import annotations

import json
import math
import platform
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

import numpy as np

from .. import __version__
from ..errors import CheckpointError, Lenet5Error
from ..files.json_fields import is_int, is_number
from ..files.weights import (
    architecture_revision, build_architecture, check_weights, load_arrays, revision_metadata, save_arrays
)
from ..nn import Dropout
from ..text import one_line
from ..zoo.models import describe_revision
from .recipe import TrainConfig, make_optimizer, upgrade_saved


def new_partial() -> dict[str, Any]:
    """The running sums of an epoch in progress."""
    return {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}


@dataclass
class TrainingState:
    """Where a run stands between two steps."""

    epoch: int = 0  # the epoch in progress, 0-based (= epochs finished)
    step: int = 0  # batches of it already done
    partial: dict[str, Any] = field(default_factory=new_partial)
    history: list[dict[str, Any]] = field(default_factory=list)
    # The shuffle generator's state when this epoch began: resuming mid-epoch replays the
    # epoch's permutation from it and skips the batches already done.
    epoch_start_shuffle_state: dict[str, Any] | None = None


def dropout_generators(model) -> dict[str, np.random.Generator]:
    """The generator of each Dropout layer in `model`, by its dotted name."""
    return {name: module.rng for name, module in model.named_modules() if isinstance(module, Dropout)}


def versions() -> dict[str, str]:
    return {"lenet5": __version__, "numpy": np.__version__, "python": platform.python_version()}


def save_checkpoint(path: str | Path, *, model, optimizer, config: TrainConfig, state: TrainingState,
                    generators: dict[str, np.random.Generator], metadata: dict[str, Any]) -> None:
    """Write the checkpoint atomically: a crash leaves the previous one whole.

    Args:
        generators: the trainer's random streams by name (e.g. shuffle, augment); the
            model's Dropout generators are added here.
        metadata: what else the file says about the run (dataset, preprocessing).
    """
    arrays = {f"model.{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"optimizer.{k}": v for k, v in optimizer.state_dict().items()})
    training = {
        **asdict(state),
        "rng_states": {name: _jsonable(g.bit_generator.state) for name, g in generators.items()},
        "dropout_rng_states": {name: _jsonable(g.bit_generator.state)
                               for name, g in dropout_generators(model).items()},
    }
    save_arrays(path, arrays, {
        **metadata,
        "kind": "checkpoint",
        "architecture": model.name,
        **revision_metadata(model),
        "hyperparameters": asdict(config),
        "versions": versions(),
        "training": _jsonable(training),
    })


class Checkpoint:
    """A checkpoint read back: its config and state, and `restore` into live objects.

    Everything in the file is checked when it is opened, before anything in it is used:
    the hyperparameters (as a `TrainConfig` would be), the training section field by field,
    each array's name, shape and dtype before it is decompressed (exactly the model's state
    dict and the optimiser's state for that model), and its values (finite) once read. A
    file that fails any check is refused with one line naming the file and the problem.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        self.arrays, self.metadata = load_arrays(self.path, kind="checkpoint", expected=self._expected_members)
        self._check_arrays()

    @property
    def config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.metadata["hyperparameters"])

    @property
    def state(self) -> TrainingState:
        t = self.training
        return TrainingState(int(t["epoch"]), int(t["step"]), dict(t["partial"]), list(t["history"]),
                             t.get("epoch_start_shuffle_state"))

    def restore(self, model, optimizer, generators: dict[str, np.random.Generator]) -> TrainingState:
        """Load the weights, optimiser and random states into these objects, in place."""
        where = self.where
        if self.metadata["architecture"] != model.name:
            raise CheckpointError(f"{where}: checkpoint is for model {self.metadata['architecture']!r}, "
                                  f"not {model.name!r}")
        saved, building = architecture_revision(self.metadata), getattr(model, "architecture_revision", 1)
        if saved != building:
            # Same parameters, other layers: resuming would go on training another network.
            raise CheckpointError(f"{where}: checkpoint is of {model.name} {describe_revision(model.name, saved)}; "
                                  f"this lenet5 trains {describe_revision(model.name, building)}: start a new run "
                                  f"(evaluate, predict, export and serve still read this one as it was trained)")
        weights = _prefixed(self.arrays, "model.")  # checked when the file was opened
        try:
            model.load_state_dict(weights, strict=True)
            optimizer.load_state_dict(_prefixed(self.arrays, "optimizer."))
        except CheckpointError as error:
            raise CheckpointError(f"{where}: {error}") from None
        _set_states(generators, self.training["rng_states"], where, "random streams")
        _set_states(dropout_generators(model), self.training["dropout_rng_states"], where, "dropout layers")
        return self.state

    # -- the checks, in the order they run -------------------------------------------------
    def _expected_members(self, metadata: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """Called by `load_arrays` once the metadata is read and before any array is: checks
        the hyperparameters and the training section, and returns every array the file may
        hold, with its shape: the model's state dict and its optimiser's state."""
        config = _check_config(metadata.get("hyperparameters"), metadata["architecture"], self.where)
        self.training = _check_training(metadata.get("training"), config, self.where)
        model = build_architecture(metadata, self.where)
        members = {f"model.{name}": value.shape for name, value in model.state_dict().items()}
        self._model_keys = list(members)
        self._optimizer_keys = _optimizer_state_shapes(config, model, self.where)
        members.update({f"optimizer.{name}": shape for name, shape in self._optimizer_keys.items()})
        return members

    def _check_arrays(self) -> None:
        """Exactly the arrays a run of this config saves: none missing, numbers where
        numbers belong, nothing non-finite."""
        where, arrays = self.where, self.arrays
        for scalar in ("optimizer.steps", "optimizer.lr"):
            if scalar not in arrays:
                raise CheckpointError(f"{where}: the optimiser state lacks {scalar}")
        steps, lr = arrays["optimizer.steps"], arrays["optimizer.lr"]
        if steps.dtype.kind not in "iu" or steps < 0:
            raise CheckpointError(f"{where}: optimizer.steps must be a non-negative integer, found {steps!r}")
        if lr.dtype.kind != "f" or not (np.isfinite(lr) and lr > 0):
            raise CheckpointError(f"{where}: optimizer.lr must be a positive finite float, found {lr!r}")
        # An optimiser that has stepped holds its state (velocity, moments) for every parameter.
        required = set(self._model_keys)
        if int(steps) > 0:
            required |= {f"optimizer.{name}" for name in self._optimizer_keys}
        missing = sorted(required - arrays.keys())
        if missing:
            shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
            raise CheckpointError(f"{where}: the checkpoint lacks {shown}")
        if int(steps) == 0 and any(name.startswith("optimizer.state.") for name in arrays):
            raise CheckpointError(f"{where}: optimiser state saved before any step was taken")
        check_weights(_prefixed(arrays, "model."), where, "model.")
        state = {name: value for name, value in arrays.items() if name.startswith("optimizer.state.")}
        check_weights(_prefixed(state, "optimizer."), where, "optimizer.")


# The training section as `save_checkpoint` writes it: field -> required.
TRAINING_FIELDS = {"epoch": True, "step": True, "partial": True, "history": True, "rng_states": True,
                   "dropout_rng_states": True, "epoch_start_shuffle_state": False}
# A history row: field -> may be None (no validation images: no validation metrics).
HISTORY_FIELDS = {"epoch": False, "lr": False, "loss": False, "accuracy": False, "val_loss": True,
                  "val_accuracy": True, "test_loss": True, "test_accuracy": True, "seconds": False,
                  "images_per_second": True}
HISTORY_FIELDS_ADDED = {"test_loss", "test_accuracy"}  # absent from the rows of an older lenet5's runs


def _check_config(hyperparameters: Any, architecture: str, where: str) -> TrainConfig:
    """The saved TrainConfig, each field of the type its annotation names, then validated
    as `lenet5 train` would validate it."""
    if not isinstance(hyperparameters, dict):
        raise CheckpointError(f"{where}: not a checkpoint of this lenet5 (it lacks its hyperparameters)")
    hyperparameters = upgrade_saved(hyperparameters)  # an older lenet5's run resumes too
    hints = get_type_hints(TrainConfig)
    for config_field in fields(TrainConfig):
        if config_field.name not in hyperparameters:
            raise CheckpointError(f"{where}: hyperparameters lack {config_field.name!r}")
        value = hyperparameters[config_field.name]
        allowed = typing.get_args(hints[config_field.name]) or (hints[config_field.name],)
        if not _has_type(value, allowed):
            names = " or ".join("null" if kind is type(None) else kind.__name__ for kind in allowed)
            raise CheckpointError(f"{where}: hyperparameter {config_field.name!r} must be {names}, "
                                  f"found {_json_shown(value)}")
    config = TrainConfig.from_dict(hyperparameters)
    if config.model != architecture:
        raise CheckpointError(f"{where}: its hyperparameters name model {config.model!r}, "
                              f"but its weights are for {architecture!r}")
    if config.seed < 0:
        raise CheckpointError(f"{where}: hyperparameter 'seed' must be >= 0, found {config.seed}")
    for name in ("train_limit", "test_limit"):
        if getattr(config, name) is not None and getattr(config, name) < 0:
            raise CheckpointError(f"{where}: hyperparameter {name!r} must be >= 0, found {getattr(config, name)}")
    try:
        return config.resolved()
    except Lenet5Error as error:
        raise CheckpointError(f"{where}: hyperparameters: {error}") from None


def _has_type(value: Any, allowed: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in allowed
    if isinstance(value, float):  # JSON has no int/float split for 1e3, but NaN is not a setting
        return float in allowed and math.isfinite(value)
    if isinstance(value, int):
        return int in allowed or float in allowed
    return isinstance(value, allowed)


def _json_shown(value: Any) -> str:
    return one_line(json.dumps(value), 60)


def _check_training(training: Any, config: TrainConfig, where: str) -> dict[str, Any]:
    """The training section, field by field: where the run stands must be a place it can be."""
    if not isinstance(training, dict):
        raise CheckpointError(f"{where}: not a checkpoint of this lenet5 (it lacks its training state)")
    missing = [name for name, required in TRAINING_FIELDS.items() if required and name not in training]
    if missing:
        raise CheckpointError(f"{where}: not a checkpoint of this lenet5 (its training state lacks "
                              f"{', '.join(missing)})")
    unknown = sorted(set(training) - set(TRAINING_FIELDS))
    if unknown:
        raise CheckpointError(f"{where}: unknown training fields: {_json_shown(unknown)}")
    epoch = _count(training["epoch"], "training epoch", where)
    step = _count(training["step"], "training step", where)
    if epoch > config.epochs:
        raise CheckpointError(f"{where}: training epoch {epoch} is beyond the run's {config.epochs} epochs")
    if epoch == config.epochs and step:
        raise CheckpointError(f"{where}: training step {step} in an epoch after the last")
    _check_partial(training["partial"], where)
    _check_history(training["history"], epoch, where)
    start_state = training.get("epoch_start_shuffle_state")
    if start_state is not None or step:
        _check_generator_state(start_state, "epoch_start_shuffle_state", where)
    for section in ("rng_states", "dropout_rng_states"):
        states = training[section]
        if not isinstance(states, dict):
            raise CheckpointError(f"{where}: training {section} must be an object, found {_json_shown(states)}")
        for name, state in states.items():
            _check_generator_state(state, f"{section}.{name}", where)
    return training


def _count(value: Any, what: str, where: str) -> int:
    if not is_int(value) or value < 0:
        raise CheckpointError(f"{where}: {what} must be a non-negative integer, found {_json_shown(value)}")
    return value


def _amount(value: Any, what: str, where: str) -> float:
    if not is_number(value) or not math.isfinite(value) or value < 0:
        raise CheckpointError(f"{where}: {what} must be a non-negative finite number, found {_json_shown(value)}")
    return value


def _check_partial(partial: Any, where: str) -> None:
    if not isinstance(partial, dict) or set(partial) != set(new_partial()):
        raise CheckpointError(f"{where}: training partial must hold exactly {', '.join(new_partial())}, "
                              f"found {_json_shown(partial)}")
    _amount(partial["loss_sum"], "training partial.loss_sum", where)
    _amount(partial["seconds"], "training partial.seconds", where)
    seen = _count(partial["seen"], "training partial.seen", where)
    if _count(partial["correct"], "training partial.correct", where) > seen:
        raise CheckpointError(f"{where}: training partial counts more correct images than it has seen")


def _check_history(history: Any, epoch: int, where: str) -> None:
    if not isinstance(history, list) or len(history) != epoch:
        raise CheckpointError(f"{where}: training history must be a list of {epoch} rows (one per epoch done), "
                              f"found {_json_shown(history)}")
    for index, row in enumerate(history):
        required = set(HISTORY_FIELDS) - HISTORY_FIELDS_ADDED
        if not isinstance(row, dict) or not required <= set(row) <= set(HISTORY_FIELDS):
            raise CheckpointError(f"{where}: training history row {index + 1} must hold exactly "
                                  f"{', '.join(HISTORY_FIELDS)}")
        if row["epoch"] != index + 1 or isinstance(row["epoch"], bool):
            raise CheckpointError(f"{where}: training history row {index + 1} says epoch {_json_shown(row['epoch'])}")
        for name, may_be_none in HISTORY_FIELDS.items():
            if not (may_be_none and row.get(name) is None):
                _amount(row[name], f"training history row {index + 1} {name}", where)


def _check_generator_state(state: Any, what: str, where: str) -> None:
    """A PCG64 state (what `np.random.default_rng` uses) that a generator accepts."""
    if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
        raise CheckpointError(f"{where}: training {what} is not a PCG64 generator state")
    try:
        np.random.PCG64().state = state
    except (ValueError, TypeError, KeyError, OverflowError) as error:
        raise CheckpointError(f"{where}: training {what} is not a valid generator state ({error})") from None


def _optimizer_state_shapes(config: TrainConfig, model, where: str) -> dict[str, tuple[int, ...]]:
    """The arrays `optimizer.state_dict()` holds for this config and model once it has
    stepped, by name: learnt from one step on a scratch copy, so that they follow the
    optimiser's own code (momentum's velocity, Adam's two moments)."""
    try:
        optimizer = make_optimizer(config, model.parameters())
    except ValueError as error:
        raise CheckpointError(f"{where}: hyperparameters: {error}") from None
    optimizer.zero_grad()
    if config.optimizer == "sdlm":  # SDLM steps only with a curvature (zero here)
        optimizer.set_curvature()
    optimizer.step()
    return {name: np.shape(value) for name, value in optimizer.state_dict().items()}


def _prefixed(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {name[len(prefix):]: value for name, value in arrays.items() if name.startswith(prefix)}


def _set_states(generators: dict[str, np.random.Generator], states: dict[str, Any], where: str, what: str) -> None:
    if set(generators) != set(states):
        raise CheckpointError(f"{where}: the {what} saved ({', '.join(sorted(states)) or 'none'}) do not match "
                              f"this run's ({', '.join(sorted(generators)) or 'none'})")
    for name, generator in generators.items():
        try:
            generator.bit_generator.state = states[name]
        except (ValueError, TypeError, KeyError, OverflowError) as error:
            raise CheckpointError(f"{where}: cannot restore the random state of {name!r} ({error})") from None


def _jsonable(value):
    # PCG64 states hold 128-bit ints; JSON keeps arbitrary-precision ints exactly.
    return json.loads(json.dumps(value))
