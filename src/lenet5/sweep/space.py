"""The search space: `--param NAME=SPEC`, one per option of `lenet5 train` the study varies.

    NAME       an option of `lenet5 train` without its dashes: lr, batch-size, augment, ...
    log:A:B    a float drawn on a log scale in [A, B]        (lr=log:1e-4:1e-2)
    float:A:B  a float drawn uniformly in [A, B]              (momentum=float:0.8:0.99)
    int:A:B    an integer in [A, B]                           (epochs=int:3:10)
    choice:X,Y one of the values listed                       (augment=choice:none,affine)

Every value is passed to `lenet5 train` as its option would be typed, so the train command's
own checks judge it and each trial's command can be run again by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import Lenet5Error

# The options of `lenet5 train` a study may vary: everything that changes what is trained.
SWEEPABLE = ("model", "dataset", "epochs", "batch-size", "optimizer", "lr", "momentum", "weight-decay", "schedule",
             "mu", "loss", "order", "augment", "augment-strength", "augment-delay", "clean-epochs", "validation",
             "seed", "train-limit", "test-limit", "backend")
KINDS = ("log", "float", "int", "choice")


class SpaceError(Lenet5Error):
    """A `--param` that does not say a range lenet5 can draw from."""


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()

    def suggest(self, trial) -> str:
        """The value `trial` draws, as `lenet5 train` reads it."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return str(trial.suggest_int(self.name, int(self.low), int(self.high)))
        return repr(trial.suggest_float(self.name, self.low, self.high, log=self.kind == "log"))

    def spec(self) -> str:
        if self.kind == "choice":
            return f"{self.name}=choice:{','.join(self.choices)}"
        low, high = (int(self.low), int(self.high)) if self.kind == "int" else (self.low, self.high)
        return f"{self.name}={self.kind}:{low}:{high}"


def parse_param(text: str) -> Param:
    """`NAME=KIND:...` as a Param; a one-line SpaceError saying what is wrong and what was expected."""
    name, equals, spec = text.partition("=")
    name = name.strip().lstrip("-")
    if not equals or not name:
        raise SpaceError(f"--param {text!r}: expected NAME=SPEC, e.g. lr=log:1e-4:1e-2")
    if name not in SWEEPABLE:
        raise SpaceError(f"--param {text!r}: {name!r} is not an option of lenet5 train a study can vary "
                         f"(one of: {', '.join(SWEEPABLE)})")
    kind, colon, rest = spec.partition(":")
    if kind not in KINDS or not colon:
        raise SpaceError(f"--param {text!r}: the range must start with one of {', '.join(k + ':' for k in KINDS)} "
                         f"(e.g. {name}=choice:a,b or {name}=log:1e-4:1e-2)")
    if kind == "choice":
        choices = tuple(value.strip() for value in rest.split(","))
        if not all(choices) or len(set(choices)) != len(choices):
            raise SpaceError(f"--param {text!r}: choice needs distinct, non-empty values separated by commas")
        return Param(name, kind, choices=choices)
    bounds = rest.split(":")
    number = int if kind == "int" else float
    try:
        low, high = (number(bound) for bound in bounds)
    except ValueError:
        raise SpaceError(f"--param {text!r}: {kind} needs two {'integers' if kind == 'int' else 'numbers'}, "
                         f"LOW:HIGH, found {rest!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise SpaceError(f"--param {text!r}: LOW must be at most HIGH, both finite, found {low}:{high}")
    if kind == "log" and low <= 0:
        raise SpaceError(f"--param {text!r}: a log range needs LOW > 0, found {low}")
    return Param(name, kind, float(low), float(high))


def check_space(params: list[Param]) -> None:
    names = [param.name for param in params]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise SpaceError(f"--param names {', '.join(twice)} more than once")
