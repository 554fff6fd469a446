"""LeNet-5 as published: its constants in one place, and the two parts of its recipe that
`lenet5.nn` leaves open (the weight initialisation's scale, the output layer's curvature).

LeCun, Bottou, Bengio and Haffner (1998), "Gradient-based learning applied to document
recognition", Proc. IEEE 86(11): table I (which S2 maps each C3 map sees), the 7×12 codes of
the output layer's RBF units (figure 3), the parameter and connection counts of section II-B,
and the results of section III-C that the report and the documentation compare a run with.

Where the RBF codes come from, and what was checked
---------------------------------------------------
The paper prints the codes only as a picture (figure 3: the printable ASCII set drawn as
stylised 7×12 bitmaps; an RBF centre is +1 on a black pixel and −1 on a white one). Every
public numeric version we found is the same transcription, copied from file to file (for
instance as `RBF_BITMAP.py` in AlgorithmicIntelligence/quantization_lenet on GitHub, and as
`_zero = [...]` lists in several PyTorch ports). The bitmaps below are that transcription's
data, retyped in our own notation ("#" for +1, "." for −1, one string per row).

Checked here (and in tests/zoo/test_lenet5_1998.py): each code is 12 rows of 7 pixels, every
value ±1; the ten are pairwise distinct (Hamming distances 12 to 50 pixels of 84; the closest
pair is 6 and 8); and all 840 pixels agree with the digits read off a capture of the printed
figure (`figures/ASCII_set.png` in francotseng/LeNet5 on GitHub), independently of the numeric
list. That includes the bar (`.#####.`) above an empty row that opens 0, 2, 4 and 5 and that
the other six lack: it is the figure's, not a transcription artefact. docs/lenet5-1998.md says
how the figure was read.
"""

from __future__ import annotations

import numpy as np

from ..nn import RBF, MAPLoss, MLELoss, Sequential, estimate_curvature

# Table I: row f lists which of S2's 6 maps C3's map f sees. The first six see three
# contiguous maps, the next six four contiguous ones, three see four discontinuous ones,
# the last sees all six.
C3_CONNECTIONS = np.array(
    [
        [1, 1, 1, 0, 0, 0], [0, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 0], [0, 0, 0, 1, 1, 1],
        [1, 0, 0, 0, 1, 1], [1, 1, 0, 0, 0, 1], [1, 1, 1, 1, 0, 0], [0, 1, 1, 1, 1, 0],
        [0, 0, 1, 1, 1, 1], [1, 0, 0, 1, 1, 1], [1, 1, 0, 0, 1, 1], [1, 1, 1, 0, 0, 1],
        [1, 1, 0, 1, 1, 0], [0, 1, 1, 0, 1, 1], [1, 0, 1, 1, 0, 1], [1, 1, 1, 1, 1, 1],
    ],
    dtype=np.int8,
)

CODE_HEIGHT, CODE_WIDTH = 12, 7

# Figure 3's digits, "#" = black = +1, "." = white = −1 (see the module docstring).
_DIGIT_BITMAPS = (
    (".#####.", ".......", "..###..", ".##.##.", "##...##", "##...##",
     "##...##", "##...##", ".##.##.", "..###..", ".......", "......."),
    ("...##..", "..###..", ".####..", "...##..", "...##..", "...##..",
     "...##..", "...##..", "...##..", ".######", ".......", "......."),
    (".#####.", ".......", ".#####.", "##...##", "#....##", "....##.",
     "..###..", ".##....", "##.....", "#######", ".......", "......."),
    ("#######", ".....##", "....##.", "...##..", "..####.", ".....##",
     ".....##", ".....##", "##...##", ".#####.", ".......", "......."),
    (".#####.", ".......", ".......", ".##..##", ".##..##", "###..##",
     "##...##", "##...##", "##..###", ".######", ".....##", ".....##"),
    (".#####.", ".......", "#######", "##.....", "##.....", ".####..",
     "..####.", ".....##", "##...##", ".#####.", ".......", "......."),
    ("..####.", ".##....", "##.....", "##.....", "######.", "###..##",
     "##...##", "##...##", "###..##", ".#####.", ".......", "......."),
    ("#######", ".....##", ".....##", "....##.", "...##..", "...##..",
     "..##...", "..##...", "..##...", "..##...", ".......", "......."),
    (".#####.", "##...##", "##...##", "##...##", ".#####.", "##...##",
     "##...##", "##...##", "##...##", ".#####.", ".......", "......."),
    (".#####.", "##..###", "##...##", "##...##", "##..###", ".######",
     ".....##", ".....##", "....##.", ".####..", ".......", "......."),
)


def rbf_codes(dtype=np.float32) -> np.ndarray:
    """The ten RBF centres, (10, 84): row i is digit i's 7×12 bitmap read row by row, ±1."""
    codes = np.array([[[1.0 if pixel == "#" else -1.0 for pixel in row] for row in bitmap]
                      for bitmap in _DIGIT_BITMAPS], dtype=dtype)
    return codes.reshape(10, CODE_HEIGHT * CODE_WIDTH)


def code_bitmaps() -> np.ndarray:
    """The same codes as pictures, (10, 12, 7), +1 black and −1 white."""
    return rbf_codes().reshape(10, CODE_HEIGHT, CODE_WIDTH)


def print_codes(print_fn=print) -> str:
    """The ten codes side by side in text, as a person checks them against figure 3."""
    bitmaps = code_bitmaps()
    lines = ["   ".join(f"{digit:^{CODE_WIDTH}}" for digit in range(10))]
    for row in range(CODE_HEIGHT):
        lines.append("   ".join("".join("#" if value > 0 else "." for value in bitmap[row]) for bitmap in bitmaps))
    text = "\n".join(lines)
    if print_fn is not None:
        print_fn(text)
    return text


# Section II-B: trainable parameters and connections of each layer, and the totals.
PAPER_PARAMETERS = {"C1": 156, "S2": 12, "C3": 1_516, "S4": 32, "C5": 48_120, "F6": 10_164}
PAPER_CONNECTIONS = {"C1": 122_304, "S2": 5_880, "C3": 151_600, "S4": 2_000, "C5": 48_120, "F6": 10_164,
                     "OUTPUT": 840}
PAPER_TOTAL_PARAMETERS = 60_000
PAPER_TOTAL_CONNECTIONS = 340_908

# Sections II-C, III-C and appendix C: the training recipe and what it reached on MNIST.
SDLM_MU = 0.02
CURVATURE_SAMPLES = 500  # patterns h is estimated on before each pass
PAPER_LEARNING_RATES = (5e-4,) * 2 + (2e-4,) * 3 + (1e-4,) * 3 + (5e-5,) * 4 + (1e-5,) * 8  # 20 passes
PAPER_TEST_ERROR = 0.0095  # without distortions, reached "after about 10 passes"
PAPER_TEST_ERROR_PASSES = 10
PAPER_TRAIN_ERROR = 0.0035  # after 19 passes
PAPER_TRAIN_ERROR_PASSES = 19
PAPER_TEST_ERROR_DISTORTED = 0.008  # with 540,000 affine-distorted copies beside the originals


def uniform_over_sqrt_fan_in(shape, fan_in, fan_out, rng):
    """Weights uniform in ±2.4/√F_i (F_i: the unit's fan-in), as a `weight_init` function.

    The paper prints ±2.4/F_i. Read literally, each layer's weighted sums shrink by about
    1.4/√F_i (C5's are about 1e-3, far inside the sigmoid's linear part, against the
    paper's stated aim of sums "within the operating range of the sigmoid"), every
    curvature h below F6 comes out under 1e-4, so μ = 0.02 sets every step to η/μ, and SDLM
    at the paper's η diverges in its first pass (docs/lenet5-1998.md has the measurement).
    With √F_i the sums have unit scale, h is of order 1 and the paper's η trains.
    """
    limit = 2.4 / np.sqrt(fan_in)
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


class PenaltyGaussNewton:
    """The paper's criteria seen from F6, for SDLM's curvature: `curvature(x, labels)` gives
    each pattern's Gauss–Newton diagonal ∂²E_p/∂x_j² with respect to the RBF layer's input x.

    MAP: E_p = y_D + log(e^{−j} + Σ_i e^{−y_i}) with y_i = Σ_j (x_j − c_ij)². The first term is a
    sum of squared residuals x_j − c_Dj, whose Gauss–Newton curvature is 2 for every x_j: this
    is the term that makes F6 regress onto its digit's code. The second, seen through the
    RBF's Jacobian, is `MAPLoss.curvature` mapped back by `RBF.backward_curvature`. Taking
    only the latter (as chaining the loss's Hessian in the logits through the network would)
    leaves h near 0 wherever every penalty is far above j, as at initialisation, where all
    ten are about 84: SDLM then steps η/μ everywhere and its first pass diverges (measured).

    MLE: E_p = y_D, the first term alone. `MLELoss.curvature` is 0 (E is linear in the
    logits), so the curvature is 2 for every x_j, and that is exact: the residuals are linear
    in x, so Gauss–Newton drops nothing.
    """

    def __init__(self, output: RBF, loss_fn: MAPLoss | MLELoss) -> None:
        self.output, self.loss_fn = output, loss_fn

    def curvature(self, x, labels) -> np.ndarray:
        competition = self.output.backward_curvature(self.loss_fn.curvature(self.output.forward(x), labels))
        return competition + 2.0


def estimate_sdlm_curvature(model: Sequential, loss_fn, x, y, batch_size: int = 100) -> None:
    """Fill every parameter's `curvature` with the average over (x, y) of its Gauss–Newton
    diagonal (`lenet5.nn.estimate_curvature`); for a model ending in fixed RBF units under
    the MAP or MLE criterion, the output layer's part is the paper's (`PenaltyGaussNewton`)."""
    *features, output = model.layers
    if isinstance(output, RBF) and not output.trainable and isinstance(loss_fn, (MAPLoss, MLELoss)):
        body = Sequential(*zip(model.layer_names[:-1], features), name=model.name)
        estimate_curvature(body, PenaltyGaussNewton(output, loss_fn), x, y, batch_size)
    else:
        estimate_curvature(model, loss_fn, x, y, batch_size)
