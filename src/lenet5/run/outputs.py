"""The one check that a model's outputs are numbers, for every command that runs a model.

Finite weights can still give inf (a weight of 3e38 times a bright pixel) or NaN (a BatchNorm
whose running variance is negative), and a loss, a probability or an argmax of those would be
printed as if it meant something ("loss nan", class 0). Whatever runs a model (evaluate,
report, predict, the classifier, a run as it is loaded) refuses them here, in one message.
"""

from __future__ import annotations

import numpy as np

from ..errors import Lenet5Error


class OutputsError(Lenet5Error):
    """A model whose outputs are not finite numbers: its weights cannot be used."""


def check_outputs(outputs: np.ndarray, inputs: str, where: str | None = None) -> None:
    """Refuse `outputs` (logits or probabilities) holding inf or NaN, in one line naming `where`
    (the run) and `inputs`, what the model was given ("10,000 images")."""
    if np.isfinite(outputs).all():
        return
    prefix = f"{where}: " if where else ""
    raise OutputsError(f"{prefix}the model's outputs for {inputs} are not finite numbers (weights whose products "
                       "overflow, or BatchNorm statistics that are not valid); this model cannot be used")


def images(count: int) -> str:
    return f"{count:,} image{'' if count == 1 else 's'}"
