"""RBF: LeNet-5's (1998) output layer of Euclidean radial basis function units."""

from __future__ import annotations

import numpy as np

from .checks import check_input, positive_int
from .init import as_generator
from .module import Module
from .parameter import Parameter


class RBF(Module):
    """logits[n, i] = −Σ_j (x[n, j] − centers[i, j])², the negated penalties y_i.

    Each output unit measures how far its input is from the unit's centre, a stylised 7×12
    bitmap of its class with entries ±1 (LeCun et al. 1998, §II-B). The paper's output is
    the penalty y_i itself, smallest for the winning class; this layer returns −y_i so that
    argmax, softmax and every caller that treats the output as a classifier's logits work
    unchanged. `MAPLoss` takes the same logits.

    Args:
        in_features, out_features: the size of x (84 in the paper) and the number of classes.
        centers: (out_features, in_features) array; None draws ±1 uniformly from `rng`.
        trainable: False keeps the centres fixed, as the paper does: a buffer named `centers`,
            saved in state dicts, counted as non-trainable, never optimised. True makes them a
            Parameter named `centers`.
        rng: a Generator or seed, used only when `centers` is None.

    Shape:
        (N, in_features) -> (N, out_features); centers (out_features, in_features).
    """

    prefix = "rbf"

    def __init__(self, in_features: int, out_features: int, centers: np.ndarray | None = None,
                 trainable: bool = False, rng=None) -> None:
        super().__init__()
        self.in_features = positive_int(in_features, "in_features", "RBF")
        self.out_features = positive_int(out_features, "out_features", "RBF")
        if centers is None:
            centers = as_generator(rng).choice([-1.0, 1.0], size=(self.out_features, self.in_features))
        centers = np.asarray(centers)
        if centers.shape != (self.out_features, self.in_features) or centers.dtype.kind not in "biuf":
            raise ValueError(f"RBF: centers must be numbers of shape ({self.out_features}, {self.in_features}), "
                             f"found {centers.dtype} of shape {centers.shape}")
        if not np.isfinite(centers).all():
            raise ValueError("RBF: centers must be finite")
        self.trainable = bool(trainable)
        if self.trainable:
            self.centers = Parameter(centers, "centers")
        else:
            self.buffer_names = ("centers",)
            self.centers = centers.astype(np.float64 if centers.dtype == np.float64 else np.float32)

    def center_values(self, dtype) -> np.ndarray:
        centers = self.centers.value if self.trainable else self.centers
        return centers.astype(dtype, copy=False)

    def output_shape(self, input_shape):
        return (self.out_features,)

    def forward(self, x):
        check_input(self, x, 2, f"(N, {self.in_features})", channels=self.in_features)
        self._x = x
        differences = x[:, None, :] - self.center_values(x.dtype)[None, :, :]    # (N, out, in)
        return -np.einsum("nij,nij->ni", differences, differences)

    def backward(self, dlogits):
        # ∂logit_i/∂x_j = −2(x_j − c_ij) and ∂logit_i/∂c_ij = 2(x_j − c_ij), summed over i (for
        # x) or over the batch (for c); the products are expanded so no (N, out, in) array is made.
        x, centers = self._x, self.center_values(dlogits.dtype)
        if self.trainable:
            self.centers.grad += 2 * (dlogits.T @ x - dlogits.sum(axis=0)[:, None] * centers)
        return -2 * (dlogits.sum(axis=1, keepdims=True) * x - dlogits @ centers)

    def backward_curvature(self, d2logits):
        # Both Jacobian entries are ±2(x_j − c_ij), so each squared is 4(x_j − c_ij)².
        squared = 4 * (self._x[:, None, :] - self.center_values(d2logits.dtype)[None, :, :]) ** 2
        if self.trainable:
            self.centers.curvature += np.einsum("ni,nij->ij", d2logits, squared)
        return np.einsum("ni,nij->nj", d2logits, squared)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}" + (", trainable=True" if self.trainable else "")
