"""A trained run as an object that classifies pictures of digits, for Python users:

    clf = lenet5.load("runs/demo")
    p = clf.predict("digit.png")
    print(p.label, p.probabilities)

Pillow is needed only for pictures; a (28, 28) uint8 array in MNIST's convention (white ink
255 on black 0) is classified as it is, with NumPy alone.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import Lenet5Error
from ..image import DIGIT_SIDE, Digit, prepare_digit
from ..nn import softmax
from .outputs import check_outputs, images

TOP = 3  # classes a Prediction ranks
# Digits a preprocessing confidence is shown with, by `lenet5 predict --json` and the service;
# probabilities are shown as computed (a float64 survives JSON whole), never rounded.
CONFIDENCE_DIGITS = 3


@dataclass(frozen=True)
class Prediction:
    """The network's answer for one picture.

    label: the most probable class. probabilities: (10,) floats summing to 1. top: the best
    three (label, probability), best first. digit: what the network saw and the preprocessing
    verdict (a confident answer on a verdict other than "one digit" deserves doubt).
    """

    label: int
    probabilities: np.ndarray
    top: list[tuple[int, float]]
    digit: Digit


class Classifier:
    """A finished run's model (in eval mode) with the preprocessing it was trained with."""

    def __init__(self, model, metadata: dict, run_dir: Path):
        self.model = model
        self.metadata = metadata
        self.run_dir = run_dir
        hyperparameters = metadata.get("hyperparameters")
        self.name = str(hyperparameters.get("model") if isinstance(hyperparameters, dict)
                        and isinstance(hyperparameters.get("model"), str) else metadata["architecture"])
        metrics = metadata.get("metrics")
        self.metrics = dict(metrics) if isinstance(metrics, dict) else {}

    def __repr__(self) -> str:
        return f"Classifier({self.name!r}, run {str(self.run_dir)!r})"

    def info(self) -> dict:
        """Model name, architecture (one string per layer), parameter count and test metrics."""
        return {"name": self.name, "architecture": [repr(layer) for layer in self.model.layers],
                "parameters": self.model.num_parameters(), "metrics": self.metrics}

    def logits(self, pixels) -> np.ndarray:
        """The model's outputs (N, K) for MNIST-like digits (N, 28, 28) (or one (28, 28)), uint8
        0..255 with white ink on black; the model's own preprocessing is applied here.

        The one inference path: `lenet5 predict`, `evaluate`, `report` and `serve` all come
        through here, so they give the same numbers for the same digits."""
        from .preprocessing import preprocess_like

        pixels = np.asarray(pixels)
        if pixels.ndim == 2:
            pixels = pixels[None]
        if pixels.ndim != 3 or pixels.shape[1:] != (DIGIT_SIDE, DIGIT_SIDE) or pixels.dtype != np.uint8:
            raise Lenet5Error(f"expected uint8 digits of shape (N, {DIGIT_SIDE}, {DIGIT_SIDE}), "
                              f"found {pixels.dtype} of shape {pixels.shape}")
        if len(pixels) == 0:
            return np.zeros((0, len(self.class_names)))
        with np.errstate(all="ignore"):  # overflow is reported below, in one line
            logits = self.engine.predict_logits(preprocess_like(pixels, self.metadata))
        check_outputs(logits, images(len(pixels)), str(self.run_dir))
        return logits

    def probabilities(self, pixels) -> np.ndarray:
        """Class probabilities (N, K), float64, of the digits `logits` takes: its softmax."""
        return softmax(self.logits(pixels).astype(np.float64), axis=1)

    @functools.cached_property
    def engine(self):
        """The fast engine's folded inference plan (compiled where Numba is installed): the
        reference model's answers to float32 rounding, several times faster, the same whatever
        the thread count."""
        from .engine import make_engine

        return make_engine(self.model)

    @functools.cached_property
    def loss_fn(self):
        """The loss the run trained with (`lenet5 train --loss`, else its model's own), as
        `lenet5 evaluate` and `report` give its loss values: `value_and_grad(logits, labels)`."""
        from ..zoo.models import get_spec

        spec = get_spec(self.metadata["architecture"])
        return spec.make_loss(spec.saved_loss(self.metadata.get("hyperparameters")))

    @property
    def class_names(self) -> list[str]:
        return self.metadata.get("class_names") or [str(i) for i in range(10)]

    def predict(self, image) -> Prediction:
        """The class of one picture: a path, the bytes of an image file, a PIL image, or an array
        (a (28, 28) uint8 array is taken as MNIST-like; any other goes through `prepare_digit`)."""
        return self.predict_many([image])[0]

    def predict_many(self, images) -> list[Prediction]:
        """`predict` for each of `images`, in one batched forward pass."""
        digits = [prepare_digit(image) for image in images]
        if not digits:
            return []
        probabilities = self.probabilities(np.stack([digit.pixels for digit in digits]))
        return [_prediction(row, digit) for row, digit in zip(probabilities, digits)]


def ranked(probabilities: np.ndarray, top: int = TOP) -> np.ndarray:
    """The `top` most probable classes of one row of probabilities, best first."""
    return np.argsort(probabilities, kind="stable")[::-1][:top]


def _prediction(probabilities: np.ndarray, digit: Digit) -> Prediction:
    best = ranked(probabilities)
    return Prediction(label=int(best[0]), probabilities=probabilities,
                      top=[(int(i), float(probabilities[i])) for i in best], digit=digit)


def load(run_dir) -> Classifier:
    """The classifier of a finished run directory (written by `lenet5 train`); a one-line
    Lenet5Error for a missing or corrupt run."""
    from .directory import load_run

    run_dir = Path(run_dir)
    model, metadata = load_run(run_dir)
    return Classifier(model, metadata, run_dir)
