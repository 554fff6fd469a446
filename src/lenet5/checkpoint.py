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
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import CheckpointError
from .nn import Dropout
from .recipe import TrainConfig
from .serialization import load_arrays, save_arrays


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
        "hyperparameters": asdict(config),
        "versions": versions(),
        "training": _jsonable(training),
    })


class Checkpoint:
    """A checkpoint read back: its config and state, and `restore` into live objects."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.arrays, self.metadata = load_arrays(self.path, kind="checkpoint")
        training = self.metadata.get("training")
        known = {"epoch", "step", "partial", "history", "rng_states", "dropout_rng_states"}
        if not isinstance(training, dict) or not known <= training.keys():
            raise CheckpointError(f"{self.path}: not a checkpoint of this lenet5 (its training state lacks "
                                  f"{', '.join(sorted(known - set(training or {})))})")
        self.training = training

    @property
    def config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.metadata.get("hyperparameters", {}))

    @property
    def state(self) -> TrainingState:
        t = self.training
        return TrainingState(int(t["epoch"]), int(t["step"]), dict(t["partial"]), list(t["history"]),
                             t.get("epoch_start_shuffle_state"))

    def restore(self, model, optimizer, generators: dict[str, np.random.Generator]) -> TrainingState:
        """Load the weights, optimiser and random states into these objects, in place."""
        where = str(self.path)
        if self.metadata["architecture"] != model.name:
            raise CheckpointError(f"{where}: checkpoint is for model {self.metadata['architecture']!r}, "
                                  f"not {model.name!r}")
        weights = _prefixed(self.arrays, "model.")
        for name, value in weights.items():
            if np.asarray(value).dtype.kind == "f" and not np.isfinite(value).all():
                raise CheckpointError(f"{where}: model.{name} holds non-finite values")
        try:
            model.load_state_dict(weights, strict=True)
            optimizer.load_state_dict(_prefixed(self.arrays, "optimizer."))
        except CheckpointError as error:
            raise CheckpointError(f"{where}: {error}") from None
        _set_states(generators, self.training["rng_states"], where, "random streams")
        _set_states(dropout_generators(model), self.training["dropout_rng_states"], where, "dropout layers")
        return self.state


def _prefixed(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {name[len(prefix):]: value for name, value in arrays.items() if name.startswith(prefix)}


def _set_states(generators: dict[str, np.random.Generator], states: dict[str, Any], where: str, what: str) -> None:
    if set(generators) != set(states):
        raise CheckpointError(f"{where}: the {what} saved ({', '.join(sorted(states)) or 'none'}) do not match "
                              f"this run's ({', '.join(sorted(generators)) or 'none'})")
    for name, generator in generators.items():
        generator.bit_generator.state = states[name]


def _jsonable(value):
    # PCG64 states hold 128-bit ints; JSON keeps arbitrary-precision ints exactly.
    return json.loads(json.dumps(value))
