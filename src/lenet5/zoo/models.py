"""The LeNet-5 family by name, each knowing its input preprocessing and training defaults.

`build_model(name, seed)` gives a fresh `Sequential`; `MODELS[name]` describes it.

A model whose layers change gets a new `revision`, saved with every run, and keeps its
earlier builds: a run is always rebuilt as it was trained, never as today's layers (a
parameter-free layer added, as the 1998 network's squashing after C1 and C3 was, would
otherwise load the old weights into the new network without a word).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from ..errors import Lenet5Error
from ..nn import (
    RBF, AvgPool2D, BatchNorm1D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten, MAPLoss, MaxPool2D, MLELoss, ReLU,
    ScaledTanh, Sequential, Sigmoid, SoftmaxCrossEntropy, Subsampling, Tanh
)
from .lecun1998 import C3_CONNECTIONS, PAPER_LEARNING_RATES, rbf_codes, uniform_over_sqrt_fan_in

# The paper names j, the MAP criterion's rubbish-class constant, but gives no value; 0.1 is
# the one public reimplementations use (see `lenet5.nn.MAPLoss`).
MAP_J = 0.1

# The losses by name: "softmax", cross-entropy on a dense output's logits; "map" and "mle",
# LeCun et al. 1998's two criteria (§III-B) on the RBF output's penalties.
LOSSES = {"softmax": SoftmaxCrossEntropy, "map": lambda: MAPLoss(j=MAP_J), "mle": MLELoss}
RBF_LOSSES = ("map", "mle")


@dataclass(frozen=True)
class Preprocessing:
    """How raw 28×28 uint8 images become this model's input (see `lenet5.data.preprocess`)."""

    method: str = "standardize"  # "scale" | "standardize" | "lecun"
    pad: int = 0  # 2 turns 28×28 into the paper's 32×32


@dataclass(frozen=True)
class TrainingDefaults:
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"  # "constant" | "step" | "exponential" | "cosine" | "lecun1998"
    augment: str = "none"  # a training distortion: "none" | "shift" | "affine" | "elastic"
    augment_strength: float = 1.0  # its ranges' multiple (lenet5.data.augment): 1 the usual
    augment_delay: int = 0  # epochs trained on the images as drawn before the distortions start
    clean_epochs: int = 0  # the last epochs, trained on the images as drawn again
    order: str = "shuffle"  # "shuffle": a new permutation each epoch; "fixed": one, reused
    validation: int = 5000  # training images held out to validate on; 0 trains on all 60,000


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    build: Callable[[np.random.Generator], Sequential]
    preprocessing: Preprocessing
    defaults: TrainingDefaults = field(default_factory=TrainingDefaults)
    # What the model trains and is evaluated with unless a run chooses another of `losses`:
    # "softmax" (cross-entropy on the logits) or "map" (LeCun et al. 1998's MAP criterion on
    # the RBF outputs, with j = MAP_J).
    loss: str = "softmax"
    revision: int = 1
    earlier_builds: Mapping[int, Callable[[np.random.Generator], Sequential]] = field(default_factory=dict)
    # What each earlier revision was, for the one-line errors that name it.
    earlier_revisions: Mapping[int, str] = field(default_factory=dict)

    @property
    def losses(self) -> tuple[str, ...]:
        """The losses a run of this model may choose: an RBF output takes either of the
        paper's criteria (MAP or MLE), a dense output only softmax cross-entropy."""
        return RBF_LOSSES if self.loss in RBF_LOSSES else (self.loss,)

    def check_loss(self, loss: str) -> None:
        """A one-line Lenet5Error unless this model may train with `loss`."""
        if loss in self.losses:
            return
        why = ""
        if loss in RBF_LOSSES:
            rbf_models = [name for name, spec in MODELS.items() if spec.loss in RBF_LOSSES]
            why = f" (the {loss} criterion needs an RBF output: {', '.join(rbf_models)})"
        elif loss not in tuple(LOSSES):  # a tuple: a crafted file's list or dict is not hashable
            why = f" (known losses: {', '.join(LOSSES)})"
        raise Lenet5Error(f"model {self.name!r} cannot train with loss {loss!r}: it accepts "
                          f"{' or '.join(self.losses)}{why}")

    def saved_loss(self, settings) -> object:
        """The loss a run's saved settings (its `hyperparameters`) name, unchecked: their `loss`,
        or where they name none (a run saved before runs chose one), this model's own, which
        it trained with."""
        loss = settings.get("loss") if isinstance(settings, Mapping) else None
        return self.loss if loss is None else loss

    def make_loss(self, loss: str | None = None):
        """A fresh loss object, `value_and_grad(logits, labels) -> (loss, dlogits)`: `loss`
        (one of `losses`), or the model's own when None."""
        loss = self.loss if loss is None else loss
        self.check_loss(loss)
        return LOSSES[loss]()

    @property
    def input_shape(self) -> tuple[int, int, int]:
        side = 28 + 2 * self.preprocessing.pad
        return (1, side, side)


# Max-pooling comes before ReLU in these models: max(relu(a), relu(b)) = relu(max(a, b))
# exactly, in floating point too, and the gradients agree (a window whose maximum is <= 0
# passes no gradient either way), so the network computes the same function while ReLU
# runs on a quarter of the values.


def _lenet5(rng):
    # No bias before BatchNorm: its mean subtraction would cancel it (as in ResNet).
    he = dict(weight_init="he_uniform", rng=rng, bias=False)
    return [
        Conv2D(1, 6, 5, padding=2, **he), BatchNorm2D(6), MaxPool2D(2), ReLU(),
        Conv2D(6, 16, 5, **he), BatchNorm2D(16), MaxPool2D(2), ReLU(),
        Flatten(),
        Dense(400, 120, **he), BatchNorm1D(120), ReLU(), Dropout(0.5, rng=_child(rng)),
        Dense(120, 84, **he), BatchNorm1D(84), ReLU(), Dropout(0.5, rng=_child(rng)),
        Dense(84, 10, weight_init="glorot_uniform", rng=rng),
    ]


def _lenet5_wide(rng):
    # LeNet-5's parameters moved from its dense layers (400→120→84 holds 58,000 of lenet5's
    # 62,000) into its convolutions: 16 and 32 maps, one 64-unit hidden layer; 65,274 in all.
    he = dict(weight_init="he_uniform", rng=rng, bias=False)
    return [
        Conv2D(1, 16, 5, padding=2, **he), BatchNorm2D(16), MaxPool2D(2), ReLU(),
        Conv2D(16, 32, 5, **he), BatchNorm2D(32), MaxPool2D(2), ReLU(),
        Flatten(),
        Dense(800, 64, **he), BatchNorm1D(64), ReLU(), Dropout(0.5, rng=_child(rng)),
        Dense(64, 10, weight_init="glorot_uniform", rng=rng),
    ]


def _saturating_stack(activation, first_padding, rng):
    """The classic LeNet-5 stack (conv, conv, conv, dense, dense) with a saturating
    activation and average pooling; `classic` and `tanh` differ only in these two."""
    xavier = dict(weight_init="glorot_uniform", rng=rng)
    return [
        Conv2D(1, 6, 5, padding=first_padding, **xavier), activation(), AvgPool2D(2),
        Conv2D(6, 16, 5, **xavier), activation(), AvgPool2D(2),
        Conv2D(16, 120, 5, **xavier), activation(),
        Flatten(),
        Dense(120, 84, **xavier), activation(),
        Dense(84, 10, **xavier),
    ]


def _classic(rng):
    return _saturating_stack(Sigmoid, 2, rng)  # 28×28 input, padded by C1


def _tanh(rng):
    return _saturating_stack(Tanh, 0, rng)  # input already padded to 32×32


def _relu(rng):
    he = dict(weight_init="he_uniform", rng=rng)
    return [
        Conv2D(1, 6, 5, **he), MaxPool2D(2), ReLU(),
        Conv2D(6, 16, 5, **he), MaxPool2D(2), ReLU(),
        Flatten(),
        Dense(400, 120, **he), ReLU(),
        Dense(120, 84, **he), ReLU(),
        Dense(84, 10, weight_init="glorot_uniform", rng=rng),
    ]


def _simple_cnn(rng):
    he = dict(weight_init="he_uniform", rng=rng)
    return [
        Conv2D(1, 32, 3, padding=1, **he), MaxPool2D(2), ReLU(),
        Conv2D(32, 64, 3, padding=1, **he), MaxPool2D(2), ReLU(),
        Flatten(),
        Dense(3136, 128, **he), ReLU(),
        Dense(128, 10, weight_init="glorot_uniform", rng=rng),
    ]


def _lenet5_1998_features(rng, weight_init, squash_convolutions: bool = True):
    """C1 to F6 of LeNet-5 as published: trainable subsampling, the C3 table, f(a) =
    1.7159·tanh(2a/3) after every layer up to F6. Section II-B: each unit's weighted sum plus
    bias "is then passed through a sigmoid squashing function", the convolutions' too, as in
    LeCun's own Lush implementation, whose convolution layer "includes bias and sigmoid".
    Revision 1 (until 2026-12-05, `squash_convolutions=False`) went from C1 straight into S2
    and from C3 into S4. The squashing has no parameters, so both draw the same weights."""
    lecun = dict(weight_init=weight_init, rng=rng)
    c1 = [("c1", Conv2D(1, 6, 5, **lecun))] + ([("a1", ScaledTanh())] if squash_convolutions else [])
    c3 = ([("c3", Conv2D(6, 16, 5, connections=C3_CONNECTIONS, **lecun))]
          + ([("a3", ScaledTanh())] if squash_convolutions else []))
    return c1 + [("s2", Subsampling(6)), ("a2", ScaledTanh())] + c3 + [
        ("s4", Subsampling(16)), ("a4", ScaledTanh()),
        ("c5", Conv2D(16, 120, 5, **lecun)), ("a5", ScaledTanh()),
        ("flatten", Flatten()),
        ("f6", Dense(120, 84, **lecun)), ("a6", ScaledTanh()),
    ]


def _lenet5_1998(rng, squash_convolutions: bool = True):
    """LeNet-5 as published, end to end: F6 feeds ten Euclidean RBF units whose centres are
    fixed, each the stylised 7×12 bitmap of its digit (`lenet5.zoo.lecun1998`). Weights are
    uniform in ±2.4/√F_i (the paper prints ±2.4/F_i: see `uniform_over_sqrt_fan_in`)."""
    output = RBF(84, 10, centers=rbf_codes(), trainable=False)
    return _lenet5_1998_features(rng, uniform_over_sqrt_fan_in, squash_convolutions) + [("output", output)]


def _lenet5_1998_softmax(rng, squash_convolutions: bool = True):
    """The same network with its RBF output replaced by a dense layer under softmax
    cross-entropy, weights uniform in ±2.4/F_i: what `lenet5-1998` was before it became the
    paper's."""
    features = _lenet5_1998_features(rng, "lecun_uniform_1998", squash_convolutions)
    return features + [("output", Dense(84, 10, weight_init="lecun_uniform_1998", rng=rng))]


# Revision 1 of the two 1998 networks: no squashing after C1 and C3.
UNSQUASHED_CONVOLUTIONS = "revision 1, without the squashing after C1 and C3, before 2026-12-05"


def _child(rng: np.random.Generator) -> np.random.Generator:
    # Dropout masks get their own stream so adding or removing a dropout layer does not
    # change every weight drawn after it.
    return np.random.default_rng(rng.integers(2**63))


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "lenet5", "LeNet-5 modernised: ReLU, max-pooling, BatchNorm and dropout (default)",
            _lenet5, Preprocessing("standardize", 0),
            # Distortions pay over many epochs and cost accuracy in a few (docs/accuracy.md):
            # they start after epoch 5, so a short run trains on the digits as drawn, and stop
            # for the last 2, so a long one ends on them (99.42%; 99.40% distorting to the end).
            TrainingDefaults(epochs=20, batch_size=128, optimizer="adam", lr=4e-3, schedule="cosine",
                             augment="affine", augment_delay=5, clean_epochs=2),
        ),
        ModelSpec(
            "lenet5-wide", "LeNet-5 with its parameters in its convolutions: 16 and 32 maps, one 64-unit "
                           "hidden layer; the recipe beyond 99.5%",
            _lenet5_wide, Preprocessing("standardize", 0),
            # docs/accuracy.md: 30 epochs, affine distortions from epoch 6, the last two on the
            # digits as drawn (on all 60,000 images: 99.53% after epoch 28, 99.61% after 30).
            TrainingDefaults(epochs=30, batch_size=128, optimizer="adam", lr=4e-3, schedule="cosine",
                             augment="affine", augment_delay=5, clean_epochs=2),
        ),
        ModelSpec(
            "classic", "The classic LeNet-5: sigmoid, average pooling, 28×28 input padded by C1",
            _classic, Preprocessing("standardize", 0),
            TrainingDefaults(epochs=20, batch_size=64, optimizer="adam", lr=2e-3, schedule="cosine"),
        ),
        ModelSpec(
            "tanh", "LeNet-5 with tanh and average pooling on 32×32 input",
            _tanh, Preprocessing("standardize", 2),
            TrainingDefaults(epochs=12, batch_size=64, optimizer="adam", lr=1e-3, schedule="cosine"),
        ),
        ModelSpec(
            "relu", "LeNet-5 with ReLU and max-pooling on 32×32 input",
            _relu, Preprocessing("standardize", 2),
            # Without BatchNorm or dropout it overfits (100% training accuracy, 98.97% test,
            # measured); ±2-pixel shifts regularise it.
            TrainingDefaults(epochs=15, batch_size=64, optimizer="adam", lr=1e-3, schedule="cosine",
                             augment="shift"),
        ),
        ModelSpec(
            "simple-cnn", "A small modern CNN: two 3×3 conv blocks and a 128-unit dense layer",
            _simple_cnn, Preprocessing("standardize", 0),
            # 99.03% without augmentation (measured); ±2-pixel shifts regularise it.
            TrainingDefaults(epochs=10, batch_size=128, optimizer="adam", lr=1e-3, schedule="cosine",
                             augment="shift"),
        ),
        ModelSpec(
            "lenet5-1998", "LeNet-5 as in LeCun et al. 1998: C3 table, trainable subsampling, scaled tanh, "
                           "RBF output with fixed 7x12 codes, MAP loss, SDLM",
            _lenet5_1998, Preprocessing("lecun", 2),
            # The paper's procedure, 20 passes at its rates in one fixed random order
            # (docs/lenet5-1998.md), on batches of 4 patterns with the step scaled by the batch
            # size (lenet5.training.recipe.sdlm_step_scale); --batch-size 1 is the paper's exactly.
            TrainingDefaults(epochs=20, batch_size=4, optimizer="sdlm", lr=PAPER_LEARNING_RATES[0], schedule="lecun1998",
                             order="fixed", validation=0),
            loss="map", revision=2,
            earlier_builds={1: lambda rng: _lenet5_1998(rng, squash_convolutions=False)},
            earlier_revisions={1: UNSQUASHED_CONVOLUTIONS},
        ),
        ModelSpec(
            "lenet5-1998-softmax", "LeNet-5 1998 with a dense output layer under softmax cross-entropy",
            _lenet5_1998_softmax, Preprocessing("lecun", 2),
            TrainingDefaults(epochs=15, batch_size=64, optimizer="momentum", lr=0.02, momentum=0.9,
                             schedule="cosine"),
            revision=2,
            earlier_builds={1: lambda rng: _lenet5_1998_softmax(rng, squash_convolutions=False)},
            earlier_revisions={1: UNSQUASHED_CONVOLUTIONS},
        ),
    )
}


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise Lenet5Error(f"unknown model {name!r}; known models: {', '.join(MODELS)}") from None


def build_model(name: str = "lenet5", seed: int | None = 0, revision: int | None = None) -> Sequential:
    """A freshly initialised model; the same seed gives the same weights, bit for bit.

    revision: an earlier revision of the model's layers, for a run trained on it (None:
    today's). The model's `architecture_revision` says which it is; savers record it.
    """
    spec = get_spec(name)
    revision = spec.revision if revision is None else revision
    build = spec.build if revision == spec.revision else spec.earlier_builds.get(revision)
    if build is None:
        known = sorted({spec.revision, *spec.earlier_builds})
        raise Lenet5Error(f"model {name!r} has no revision {revision}; this lenet5 builds revisions "
                          f"{', '.join(map(str, known))}")
    rng = np.random.default_rng(seed)
    model = Sequential(*build(rng), name=name, input_shape=spec.input_shape)
    model.architecture_revision = revision
    return model


def describe_revision(name: str, revision: int) -> str:
    """'revision 2' of today's layers, or what an earlier revision was."""
    spec = get_spec(name)
    return spec.earlier_revisions.get(revision, f"revision {revision}")


def second_order_gap(name: str) -> str | None:
    """Why SDLM cannot train model `name` (None when it can), from the model itself: the
    curvature pass before each epoch (`lenet5.nn.estimate_curvature`) needs `backward_curvature`
    from every layer and `curvature` from the loss, which only LeNet-5 (1998)'s have."""
    from ..nn import Module

    missing = sorted({type(module).__name__ for module in build_model(name).modules()
                      if type(module).backward_curvature is Module.backward_curvature})
    if missing:
        return f"its {', '.join(missing)} layers have no second-order pass"
    loss = get_spec(name).make_loss()
    if not hasattr(loss, "curvature"):
        return f"its loss, {type(loss).__name__}, has no curvature"
    return None
