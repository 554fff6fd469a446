"""The second-order pass that feeds SDLM: the Gauss–Newton diagonal, averaged over patterns.

LeCun et al. (1998, appendix C) backpropagate diagonal second derivatives the way backward
propagates first ones, dropping every off-diagonal term and every term in f″:

    ∂²E/∂a_i² = f′(a_i)² Σ_k u_ki² ∂²E/∂a_k²        (a unit's input, from the units it feeds)
    ∂²E/∂u_ij² = Σ over the connections sharing u_ij of ∂²E/∂a_i² · x_j²

Each layer does this in `backward_curvature(d2out)`: it returns diag(Jᵀ diag(d2out) J) for
its input and adds the same for each parameter into `parameter.curvature`, J being the
layer's own Jacobian. Chained through a model, that is the paper's approximation, not the
exact diagonal of the Gauss–Newton matrix.
"""

from __future__ import annotations

import numpy as np

from .checks import as_float


def estimate_curvature(model, loss_fn, x, y, batch_size: int = 100) -> None:
    """Set every parameter's `curvature` to the average over the patterns (x, y) of the
    Gauss–Newton diagonal of each pattern's loss E_p (the paper uses 500 patterns).

    Args:
        model: a Module with `forward` and `backward_curvature` (e.g. a Sequential of the
            1998 network's layers). loss_fn: a loss with `curvature(logits, labels)`, e.g.
            `MAPLoss`, giving each pattern's own ∂²E_p/∂z² (not divided by N).
        x, y: the patterns and their labels. batch_size: patterns per forward pass; the
            result does not depend on it.
    """
    if len(x) == 0 or len(x) != len(y):
        raise ValueError(f"estimate_curvature: needs as many labels as patterns (at least one), "
                         f"found {len(x)} patterns and {len(y)} labels")
    if not (isinstance(batch_size, (int, np.integer)) and not isinstance(batch_size, bool) and batch_size > 0):
        raise ValueError(f"estimate_curvature: batch_size must be a positive int, found {batch_size!r}")
    parameters = model.parameters()
    for parameter in parameters:
        parameter.zero_curvature()
    for start in range(0, len(x), batch_size):
        logits = model.forward(as_float(x[start : start + batch_size]))
        model.backward_curvature(loss_fn.curvature(logits, np.asarray(y[start : start + batch_size])))
    for parameter in parameters:
        parameter.curvature /= len(x)
