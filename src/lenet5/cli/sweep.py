"""`lenet5 sweep STUDY_DIR`: many `lenet5 train` runs as one Optuna study.

    lenet5 sweep runs/lr-study --trials 20 --param lr=log:1e-4:1e-2 --param batch-size=choice:64,128 \\
        --model relu --epochs 5
    lenet5 sweep runs/lr-study --show
    lenet5 sweep runs/lr-study --seeds 0-9          # the best trial's settings over ten seeds

Every option `lenet5 sweep` does not know is an option of `lenet5 train`, passed to each trial.
"""

from __future__ import annotations

import argparse

from ..errors import Lenet5Error
from .arguments import directory_path, non_negative_int, positive_int, seed

# Options of `lenet5 train` the sweep decides itself.
OWNED = ("--out", "--resume", "--overwrite", "--no-progress")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sweep", help="many training runs as one Optuna study (one machine or many)", allow_abbrev=False,
        description="Options it does not know are lenet5 train's, passed to every trial.")
    parser.add_argument("study_dir", type=directory_path, metavar="STUDY_DIR",
                        help="the study: its trials' run directories, and its journal unless --storage")
    parser.add_argument("--trials", type=non_negative_int, default=None,
                        help="trials the study holds when done, finished or pruned (20 with --param, else 0)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=SPEC",
                        help="an option of lenet5 train to vary: lr=log:1e-4:1e-2, momentum=float:0.8:0.99, "
                             "epochs=int:3:10, augment=choice:none,affine")
    parser.add_argument("--seeds", metavar="SEEDS",
                        help="repeat the best trial's settings (or, without trials, the given ones) over these "
                             "seeds, e.g. 0-9, and summarise test accuracy and time")
    parser.add_argument("--storage", metavar="URL",
                        help="a database several machines share (postgresql://..., mysql://...); without it "
                             "the study is STUDY_DIR/study.journal")
    parser.add_argument("--study-name", help="the study's name in --storage (the study directory's name)")
    parser.add_argument("--jobs", type=positive_int, default=1,
                        help="trials at once on this machine, each on cores/JOBS threads (1)")
    parser.add_argument("--sampler", choices=("tpe", "random", "gp", "cmaes", "qmc"), default="tpe",
                        help="Optuna's sampler (tpe)")
    parser.add_argument("--pruner", choices=("median", "hyperband", "none"), default="median",
                        help="what stops hopeless trials after an epoch (median)")
    parser.add_argument("--sampler-seed", type=seed, default=0, help="the sampler's seed (0)")
    parser.add_argument("--show", action="store_true", help="print the trials table and stop")
    parser.add_argument("--worker", type=positive_int, help=argparse.SUPPRESS)  # a --jobs process's number
    parser.set_defaults(handler=sweep_command, train_options=[])


def train_from_options(options: list[str], on_epoch) -> int:
    """`lenet5 train OPTIONS`, run here, by the train command's own code."""
    from . import train

    args = _train_parser().parse_args(options)
    return train.train_command(args, on_epoch=on_epoch)


class _OptionError(Lenet5Error):
    pass


class _RaisingParser(argparse.ArgumentParser):
    def error(self, message: str):
        raise _OptionError(f"lenet5 train option: {message}")


def _train_parser() -> argparse.ArgumentParser:
    from . import train

    subparsers = _RaisingParser(prog="lenet5", add_help=False).add_subparsers(dest="command")
    train.register(subparsers)
    return subparsers.choices["train"]


def check_train_options(options: list[str], params) -> None:
    """The options passed to every trial, refused in one line when lenet5 train would refuse
    them or when the sweep decides them."""
    owned = [option for option in options if option.split("=")[0] in OWNED]
    if owned:
        raise Lenet5Error(f"{', '.join(owned)}: the sweep decides where and how each trial runs; leave them out")
    _train_parser().parse_args(options)
    for param in params:
        if any(option.split("=")[0] == f"--{param.name}" for option in options):
            raise Lenet5Error(f"--{param.name} is both fixed and varied (--param {param.spec()}); give one")


def sweep_command(args) -> int:
    from ..run.engine import usable_cores
    from ..sweep import study as studies
    from ..sweep.space import check_space

    options = list(args.train_options)
    if args.show:
        if not studies.is_study_dir(args.study_dir) and args.storage is None:
            raise Lenet5Error(f"{args.study_dir}: no study here (no {studies.STUDY_FILE})")
        study = studies.open_study(args.study_dir, None, args.storage, args.study_name)
        print(studies.trials_table(study))
        return 0
    settings = studies.Settings(fixed=options, params=list(args.param), sampler=args.sampler,
                                pruner=args.pruner, seed=args.sampler_seed)
    check_space(settings.space)
    check_train_options(options, settings.space)
    trials = args.trials if args.trials is not None else (20 if settings.space else 0)
    if trials and not settings.space:
        raise Lenet5Error("--trials needs at least one --param to vary")
    seeds = studies.parse_seeds(args.seeds) if args.seeds else None
    threads = max(1, usable_cores() // args.jobs)
    if args.worker:
        study = studies.open_study(args.study_dir, settings, args.storage, args.study_name, worker=args.worker)
        studies.optimize(study, args.study_dir, settings, trials, train_from_options, threads)
        return 0
    with studies.holding(args.study_dir, args.storage):
        study = studies.open_study(args.study_dir, settings, args.storage, args.study_name)
        if args.storage is None:
            retried = studies.fail_interrupted(study)
            if retried:
                print(f"{retried} trial{'s' if retried > 1 else ''} left running by a sweep that stopped: "
                      "marked failed, and queued again", flush=True)
        if trials:
            done, _ = studies.counted(study)
            print(f"study {args.study_dir}: {done} of {trials} trials done; {args.jobs} at a time, "
                  f"{threads} thread{'s' if threads > 1 else ''} each", flush=True)
            workers = studies.spawn_workers(args.jobs - 1, _worker_argv(args)) if args.jobs > 1 else []
            try:
                studies.optimize(study, args.study_dir, settings, trials, train_from_options, threads)
            finally:
                for worker in workers:
                    worker.wait()
            print(studies.trials_table(study))
        if seeds is not None:
            values = _best_settings(study) if trials else {}
            summary = studies.repeat_over_seeds(args.study_dir, options, values, seeds, train_from_options,
                                                usable_cores())
            accuracy, seconds = summary["test_accuracy"], summary["seconds"]
            print(f"test accuracy over {accuracy['count']} seeds: mean {accuracy['mean'] * 100:.2f}%, "
                  f"std {accuracy['std'] * 100:.2f}, min {accuracy['min'] * 100:.2f}%, max {accuracy['max'] * 100:.2f}%; "
                  f"training time mean {seconds['mean']:.0f} s (std {seconds['std']:.0f}); "
                  f"{args.study_dir / 'seeds.json'}")
    return 0


def _best_settings(study) -> dict[str, str]:
    from ..sweep.study import SweepError

    try:
        best = study.best_trial
    except ValueError:
        raise SweepError("no trial has finished, so there are no best settings to repeat over --seeds") from None
    return {name: repr(value) if isinstance(value, float) else str(value) for name, value in best.params.items()}


def _worker_argv(args) -> list[str]:
    argv = [str(args.study_dir), "--jobs", str(args.jobs), "--sampler", args.sampler, "--pruner", args.pruner,
            "--sampler-seed", str(args.sampler_seed)]
    if args.trials is not None:
        argv += ["--trials", str(args.trials)]
    for spec in args.param:
        argv += ["--param", spec]
    if args.storage:
        argv += ["--storage", args.storage]
    if args.study_name:
        argv += ["--study-name", args.study_name]
    return argv + list(args.train_options)


def main_handles_unknown(args, unknown: list[str]) -> bool:
    """Whether the command line's leftovers are this command's (lenet5 train's options)."""
    if getattr(args, "handler", None) is not sweep_command:
        return False
    args.train_options = unknown
    return True

