"""Argument types for the command line: each checks a value when it is parsed, so a bad one
is refused before anything runs, in argparse's one line naming the option and what it allows.

    parser.add_argument("--lr", type=positive_float)
    # lenet5 train: error: argument --lr: expected a positive number, found '-1'
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

SEED_LIMIT = 2**63  # numpy's SeedSequence takes any non-negative int; this keeps it an int64
# `lenet5 serve --workers auto`: the most server processes measured (benchmarks/load.py, on a
# 2-core machine); beyond it is untested.
AUTO_WORKERS_MAX = 2


def _number(text: str, kind, what: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, found {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {what}, found {text!r}")
    return value


def _checked(kind, what: str, allowed):
    def parse(text: str):
        value = _number(text, kind, what)
        if not allowed(value):
            raise argparse.ArgumentTypeError(f"expected {what}, found {text!r}")
        return value

    parse.__name__ = what  # argparse names the type in some messages
    return parse


positive_int = _checked(int, "a positive integer", lambda v: v >= 1)
non_negative_int = _checked(int, "an integer >= 0", lambda v: v >= 0)
seed = _checked(int, f"an integer in 0..{SEED_LIMIT - 1}", lambda v: 0 <= v < SEED_LIMIT)
augment_strength = _checked(float, "a number in 0..4", lambda v: 0 <= v <= 4)  # lenet5.data.augment.MAX_STRENGTH
positive_float = _checked(float, "a positive number", lambda v: v > 0)
non_negative_float = _checked(float, "a number >= 0", lambda v: v >= 0)
momentum = _checked(float, "a number in [0, 1)", lambda v: 0 <= v < 1)


def directory_path(text: str) -> Path:
    """A path that is not empty (an empty --out would write into the current directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a directory path, found {text!r}")
    return Path(text)


def thread_count(text: str) -> int:
    """A number of threads from 1 to the usable cores."""
    from ..run.engine import usable_cores

    most = usable_cores()
    value = _number(text, int, f"an integer in 1..{most}") if text.strip().lstrip("-").isdigit() else None
    if value is None or not 1 <= value <= most:
        raise argparse.ArgumentTypeError(f"expected an integer in 1..{most} (the usable cores), found {text!r}")
    return value


def worker_count(text: str) -> int:
    """'auto' (the usable cores, at most AUTO_WORKERS_MAX), or a number of server processes
    from 1 to the usable cores (at least 2, so the two-process service the tests start runs
    on a one-core machine too)."""
    from ..run.engine import usable_cores

    if text == "auto":
        return min(usable_cores(), AUTO_WORKERS_MAX)
    most = max(2, usable_cores())
    value = _number(text, int, f"'auto' or an integer in 1..{most}") if text.strip().lstrip("-").isdigit() else None
    if value is None or not 1 <= value <= most:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer in 1..{most} (the usable cores), "
                                         f"found {text!r}")
    return value


class Retired(argparse.Action):
    """An option that was removed: naming it is refused in argparse's one line, saying why and
    what to use instead, where argparse itself would only say "unrecognized arguments".

        parser.add_argument("--workers", action=Retired, reason="training runs in one process")
        # lenet5 train: error: --workers was retired: training runs in one process
    """

    def __init__(self, option_strings, dest, reason: str, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs="?", help=argparse.SUPPRESS)
        self.reason = reason

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{self.option_strings[0]} was retired: {self.reason}")
