"""A study: many `lenet5 train` runs that Optuna chooses, prunes and records.

Each trial is an ordinary run directory, STUDY_DIR/trials/trial-NNNN, trained by the train
command's own code from a command line recorded beside it (command.txt), so it can be
evaluated, reported, exported, served or trained again by hand. A trial reports its
validation accuracy after every epoch; the pruner may stop it there, and the time that saved
is recorded. The study lives in STUDY_DIR/study.journal (Optuna's journal file, safe for
several processes), or in a database given as `storage` that several machines share.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import Lenet5Error
from ..files.writing import atomic_write_text, os_reason
from ..training.run_dir import locked
from .space import Param, parse_param

JOURNAL = "study.journal"
STUDY_FILE = "study.json"  # what the directory holds: the study's name and where it is stored
TRIALS, SEEDS = "trials", "seeds"
SAMPLERS = ("tpe", "random", "gp", "cmaes", "qmc")
PRUNERS = ("median", "hyperband", "none")
HEARTBEAT_SECONDS = 30  # a database study: a trial silent for GRACE_SECONDS is failed and retried
GRACE_SECONDS = 120

# Trains one run from the arguments of `lenet5 train`; calls on_epoch(row, epochs) after each
# epoch and returns the exit status. Given by the command line, which owns `lenet5 train`.
Train = Callable[[list[str], Callable], int]


class SweepError(Lenet5Error):
    """A study that cannot be made, opened or continued as asked."""


@dataclass
class Settings:
    """What makes a study the study it is; a study directory refuses to go on with others."""

    fixed: list[str]  # options passed to every trial's `lenet5 train`
    params: list[str]  # the --param specs
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int = 0
    space: list[Param] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self):
        self.space = [parse_param(spec) for spec in self.params]

    def as_dict(self) -> dict:
        return {key: value for key, value in asdict(self).items() if key != "space"}


def optuna_module():
    try:
        import optuna
    except ModuleNotFoundError:
        raise SweepError("sweeps need Optuna: pip install 'lenet5[sweep]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def open_study(study_dir: Path, settings: Settings | None, storage: str | None = None, name: str | None = None,
               worker: int = 0):
    """The study of `study_dir` (made when absent if `settings` are given), checked against them.

    The sampler's seed is the settings' seed plus the trials already made and `worker` (a
    `--jobs` process's number): a study continued after a stop, or a second process, must
    not draw the first one's settings again."""
    optuna = optuna_module()
    name = name or study_dir.resolve().name
    try:
        study = optuna.create_study(study_name=name, storage=_storage(study_dir, storage), direction="maximize",
                                    sampler=_sampler(*((settings.sampler, settings.seed) if settings else ("tpe", 0))),
                                    pruner=_pruner(settings), load_if_exists=True)
        saved = study.user_attrs.get("settings")
        if settings is not None and saved is None:
            study.set_user_attr("settings", settings.as_dict())
            _write_study_file(study_dir, name, storage)
        elif settings is not None and saved != settings.as_dict():
            changed = [key for key, value in settings.as_dict().items() if saved.get(key) != value]
            raise SweepError(f"{study_dir}: this study was made with other settings ({', '.join(changed)} differ: "
                             f"{', '.join(f'{key} {saved.get(key)!r}' for key in changed)}); continue it with "
                             "the same ones, or start another study directory")
        if settings is not None:
            offset = len(study.get_trials(deepcopy=False)) + 7919 * worker
            study.sampler = _sampler(settings.sampler, settings.seed + offset)
    except OSError as error:
        raise SweepError(f"cannot write the study in {study_dir}: {os_reason(error)}") from None
    return study


def _storage(study_dir: Path, url: str | None):
    optuna = optuna_module()
    if url is None:
        from optuna.storages.journal import JournalFileBackend

        study_dir.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(study_dir / JOURNAL)))
    for attempt in range(3):
        try:
            with warnings.catch_warnings():  # "experimental" heartbeats: Optuna's note to its users
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS,
                    heartbeat_stale_trial_callback=_retry_once, engine_kwargs={"pool_pre_ping": True})
        except Exception as error:  # SQLAlchemy's and the driver's many kinds: all mean "cannot use it"
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            if "duplicate key" in reason and attempt < 2:
                # Two sweeps starting together on a new database both create Optuna's tables;
                # the second finds them made a moment later.
                time.sleep(1.0)
                continue
            if isinstance(error, ImportError):
                reason = "its database driver is missing (for postgresql://: pip install 'psycopg[binary]')"
            raise SweepError(f"cannot use the study storage {_without_password(url)}: {reason}") from None


def _retry_once(study, trial) -> None:
    """A trial whose process stopped beating (a machine that died): failed by Optuna, and
    its settings queued once more, unless it was itself such a retry."""
    if not trial.user_attrs.get("retry_of_stale"):
        study.enqueue_trial(trial.params, user_attrs={"retry_of_stale": trial.number})


def _without_password(url: str) -> str:
    head, at, tail = url.rpartition("@")
    if not at or "://" not in head:
        return url
    scheme, _, credentials = head.partition("://")
    return f"{scheme}://{credentials.split(':')[0]}:***@{tail}" if ":" in credentials else url


def _sampler(kind: str, seed: int):
    optuna = optuna_module()
    return {"tpe": lambda: optuna.samplers.TPESampler(seed=seed),
            "random": lambda: optuna.samplers.RandomSampler(seed=seed),
            "gp": lambda: optuna.samplers.GPSampler(seed=seed),
            "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed),
            "qmc": lambda: optuna.samplers.QMCSampler(seed=seed)}[kind]()


def _pruner(settings: Settings | None):
    optuna = optuna_module()
    kind = settings.pruner if settings else "median"
    return {"median": lambda: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
            "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1),
            "none": lambda: optuna.pruners.NopPruner()}[kind]()


def _write_study_file(study_dir: Path, name: str, storage: str | None) -> None:
    where = "journal" if storage is None else _without_password(storage)
    atomic_write_text(study_dir / STUDY_FILE, json.dumps({"study_name": name, "storage": where}, indent=2) + "\n")


def is_study_dir(path: Path) -> bool:
    return (Path(path) / STUDY_FILE).is_file()


@contextlib.contextmanager
def holding(study_dir: Path, storage: str | None):
    """The study directory for this sweep alone when the study lives in it: the lock `lenet5
    train` takes on a run directory. A database study may have many sweeps, on many machines."""
    if storage is not None:
        yield
        return
    study_dir.mkdir(parents=True, exist_ok=True)
    with locked(study_dir, holder_is="another lenet5 sweep on this study",
                hint="give the sweeps a shared --storage database"):
        yield


def fail_interrupted(study) -> int:
    """Trials left running by a sweep that died (the caller holds the directory, so none is
    running now) are marked failed and their settings queued again; returns how many."""
    optuna = optuna_module()
    stale = [trial for trial in study.get_trials(deepcopy=False) if trial.state == optuna.trial.TrialState.RUNNING]
    for trial in stale:
        study._storage.set_trial_user_attr(trial._trial_id, "failed_because", "the sweep stopped while it ran")
        study._storage.set_trial_state_values(trial._trial_id, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(trial.params, skip_if_exists=False)
    return len(stale)


def counted(study) -> tuple[int, int]:
    """(finished or pruned trials, failed trials) so far."""
    optuna = optuna_module()
    states = [trial.state for trial in study.get_trials(deepcopy=False)]
    done = sum(state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for state in states)
    return done, states.count(optuna.trial.TrialState.FAIL)


def optimize(study, study_dir: Path, settings: Settings, trials: int, train: Train, threads: int,
             log=print) -> None:
    """Run trials until the study holds `trials` finished or pruned ones (failed ones are
    replaced, up to `trials` of them)."""

    def enough(study, trial) -> None:
        done, failed = counted(study)
        if done >= trials or failed >= trials:
            study.stop()

    def objective(trial) -> float:
        return run_trial(trial, study_dir, settings, train, threads, log)

    done, failed = counted(study)
    if done >= trials or failed >= trials:
        return
    try:
        study.optimize(objective, n_trials=trials, callbacks=[enough], catch=(Lenet5Error,))
    except OSError as error:
        raise SweepError(f"cannot write the study in {study_dir}: {os_reason(error)}") from None


def train_command(fixed: list[str], values: dict[str, str], run_dir: Path) -> list[str]:
    """The arguments of `lenet5 train` for a run of `values` on top of the fixed options."""
    argv = list(fixed)
    for name, value in values.items():
        argv += [f"--{name}", str(value)]
    return argv + ["--out", str(run_dir), "--no-progress"]


def train_into(run_dir: Path, argv: list[str], train: Train, threads: int, on_epoch=None,
               recorded: list[str] | None = None) -> int:
    """Train `lenet5 train ARGV` into `run_dir`: the command (`recorded`, else `argv`) written
    to command.txt first, the run's own lines to train.log (the sweep prints one line a run)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "command.txt", "lenet5 train " + shlex.join(recorded or argv) + "\n")
    with open(run_dir / "train.log", "a", encoding="utf-8") as output, contextlib.redirect_stdout(output):
        return train(argv + ["--threads", str(threads)], on_epoch)


def run_trial(trial, study_dir: Path, settings: Settings, train: Train, threads: int, log=print) -> float:
    """One trial: its settings drawn, its run trained, its validation accuracy reported each
    epoch; the last one is its value."""
    optuna = optuna_module()
    values = {param.name: param.suggest(trial) for param in settings.space}
    run_dir = study_dir / TRIALS / f"trial-{trial.number:04d}"
    argv = train_command(settings.fixed, values, run_dir)
    trial.set_user_attr("command", "lenet5 train " + shlex.join(argv))
    trial.set_user_attr("run_dir", str(run_dir))
    seconds, reached = [], {"value": None}

    def on_epoch(row: dict, epochs: int) -> None:
        value = row.get("val_accuracy")
        if value is None:
            raise SweepError(f"{run_dir}: a sweep judges its trials on validation accuracy, and this run holds "
                             "no images out; pass --validation N to the sweep")
        seconds.append(row["seconds"])
        reached["value"] = value
        trial.report(value, row["epoch"])
        if row["epoch"] < epochs and trial.should_prune():
            saved = sum(seconds) / len(seconds) * (epochs - row["epoch"])
            trial.set_user_attr("seconds", sum(seconds))
            trial.set_user_attr("seconds_saved", saved)
            reached["pruned"] = f"pruned after epoch {row['epoch']} of {epochs}, validation " \
                                f"{value * 100:.2f}% (saved about {saved:.0f} s)"
            raise optuna.TrialPruned()

    started = time.perf_counter()
    try:
        status = train_into(run_dir, argv, train, threads, on_epoch)
    except optuna.TrialPruned:
        log(f"trial {trial.number}: {reached['pruned']}")
        raise
    except Lenet5Error as error:
        log(f"trial {trial.number}: failed: {error}")
        raise
    if status != 0:
        raise SweepError(f"trial {trial.number}: lenet5 train stopped with status {status} ({run_dir}/train.log)")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    trial.set_user_attr("test_accuracy", metrics.get("test_accuracy"))
    trial.set_user_attr("seconds", sum(seconds))
    log(f"trial {trial.number}: validation {reached['value'] * 100:.2f}%, test "
        f"{metrics.get('test_accuracy', float('nan')) * 100:.2f}%, {time.perf_counter() - started:.0f} s  "
        f"({' '.join(f'{name}={value}' for name, value in values.items())})")
    return reached["value"]


def spawn_workers(count: int, argv: list[str]) -> list[subprocess.Popen]:
    """`count` more processes running this sweep's trials on the same study (`--jobs`)."""
    return [subprocess.Popen([sys.executable, "-m", "lenet5", "sweep", *argv, "--worker", str(number)])
            for number in range(1, count + 1)]


def trials_table(study) -> str:
    """The trials as a table: number, state, validation and test accuracy, time, settings."""
    rows = [("trial", "state", "validation", "test", "seconds", "settings")]
    for trial in study.get_trials(deepcopy=False):
        value = f"{trial.value * 100:.2f}%" if trial.value is not None else ""
        test = trial.user_attrs.get("test_accuracy")
        seconds = trial.user_attrs.get("seconds")
        rows.append((str(trial.number), trial.state.name.lower().replace("complete", "finished"), value,
                     f"{test * 100:.2f}%" if test is not None else "", f"{seconds:.0f}" if seconds else "",
                     " ".join(f"{name}={value}" for name, value in trial.params.items())))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    saved = sum(trial.user_attrs.get("seconds_saved", 0.0) for trial in study.get_trials(deepcopy=False))
    lines.append(f"(a pruned trial's validation is where it stopped; pruning saved about {saved:.0f} s of training)")
    return "\n".join(lines)


def parse_seeds(text: str) -> list[int]:
    """"0-9", "3" or "0,2,5" as a list of seeds."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            low, dash, high = part.strip().partition("-")
            seeds += list(range(int(low), int(high) + 1)) if dash else [int(low)]
    except ValueError:
        raise SweepError(f"--seeds {text!r}: expected a range like 0-9 or a list like 0,2,5") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise SweepError(f"--seeds {text!r}: expected distinct non-negative seeds")
    return seeds


def repeat_over_seeds(study_dir: Path, fixed: list[str], values: dict[str, str], seeds: list[int], train: Train,
                      threads: int, log=print) -> dict:
    """The same settings trained once per seed into STUDY_DIR/seeds/seed-N (a finished one is
    kept, an interrupted one resumed); their test accuracy and training time summarised."""
    runs = []
    for seed in seeds:
        run_dir = study_dir / SEEDS / f"seed-{seed}"
        argv = train_command(fixed, {**values, "seed": seed}, run_dir)
        if not (run_dir / "metrics.json").is_file():
            resume = ["--out", str(run_dir), "--resume", "--no-progress"] if (run_dir / "checkpoint.npz").is_file() \
                else argv
            status = train_into(run_dir, resume, train, threads, recorded=argv)
            if status != 0:
                raise SweepError(f"seed {seed}: lenet5 train stopped with status {status} ({run_dir}/train.log)")
        metrics = json.loads((run_dir / "metrics.json").read_text())
        history = json.loads((run_dir / "history.json").read_text())
        runs.append({"seed": seed, "run_dir": str(run_dir), "test_accuracy": metrics["test_accuracy"],
                     "seconds": sum(row["seconds"] for row in history)})
        log(f"seed {seed}: test {metrics['test_accuracy'] * 100:.2f}%, {runs[-1]['seconds']:.0f} s")
    summary = {"settings": values, "fixed": fixed, "runs": runs,
               "test_accuracy": _spread([run["test_accuracy"] for run in runs]),
               "seconds": _spread([run["seconds"] for run in runs])}
    atomic_write_text(study_dir / "seeds.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _spread(values: list[float]) -> dict:
    std = statistics.stdev(values) if len(values) > 1 else 0.0  # the sample's, as accuracy.py's rows
    return {"mean": statistics.fmean(values), "std": std, "min": min(values), "max": max(values),
            "count": len(values)}
