"""Optimisers: built from `model.parameters()`, each with `step()` and `zero_grad()`.

SGD, Adam, AdamW, and SDLM, LeNet-5's (1998) stochastic diagonal Levenberg–Marquardt.

Each update rule is a small function of (value, grad, state, hyperparameters) that reads like
its paper; the classes only hold hyperparameters and per-parameter state, so no optimiser
ever special-cases a layer.
"""

from __future__ import annotations

import math

import numpy as np

from .parameter import Parameter


def sgd_update(value, grad, state, lr, weight_decay):
    """θ ← θ − η·(g + λθ)."""
    if weight_decay:
        grad = grad + weight_decay * value
    value -= lr * grad


def momentum_update(value, grad, state, lr, weight_decay, momentum, nesterov):
    """v ← μv + g;  θ ← θ − η·v  (Nesterov: θ ← θ − η·(g + μv)), PyTorch's formulation."""
    if weight_decay:
        grad = grad + weight_decay * value
    velocity = state.setdefault("velocity", np.zeros_like(value))
    velocity *= momentum
    velocity += grad
    value -= lr * (grad + momentum * velocity if nesterov else velocity)


def adam_update(value, grad, state, lr, weight_decay, beta1, beta2, eps, step, decoupled):
    """Kingma & Ba (2015), with bias correction; AdamW (Loshchilov & Hutter 2019) decays θ
    directly instead of adding λθ to the gradient."""
    if weight_decay and decoupled:
        value -= lr * weight_decay * value
    elif weight_decay:
        grad = grad + weight_decay * value
    mean = state.setdefault("mean", np.zeros_like(value))
    sq = state.setdefault("sq", np.zeros_like(value))
    mean *= beta1
    mean += (1 - beta1) * grad
    sq *= beta2
    sq += (1 - beta2) * grad * grad
    step_size = lr * math.sqrt(1 - beta2**step) / (1 - beta1**step)
    # eps is scaled so the update equals lr·m̂ / (sqrt(v̂) + eps) exactly.
    value -= step_size * mean / (np.sqrt(sq) + eps * math.sqrt(1 - beta2**step))


def sdlm_update(value, grad, state, lr, weight_decay, mu):
    """LeCun et al. (1998, appendix C): ε_k = η / (μ + h_kk);  θ_k ← θ_k − ε_k·(g_k + λθ_k).

    h is the Gauss–Newton diagonal of ∂²E/∂θ², held fixed in `state["h"]` between calls to
    `SDLM.set_curvature`; μ keeps the step finite where the curvature is near zero."""
    if weight_decay:
        grad = grad + weight_decay * value
    value -= lr / (mu + state["h"]) * grad


class Optimizer:
    """Holds the parameters, the learning rate and each parameter's state.

    Args:
        parameters: a list of `Parameter` (e.g. `model.parameters()`).
        lr: learning rate, > 0. weight_decay: L2 coefficient λ ≥ 0.

    `state[i]` is parameter i's state (Adam's moments, momentum's velocity, SDLM's h), arrays
    shaped like the parameter; `step()` applies the update rule (`update`) to each parameter
    in turn. The parameters' arrays stay the model's: the optimiser never moves them.
    (`lenet5.fast.FlatOptimizer` moves them into one flat buffer for speed, when asked.)
    """

    name = "optimizer"

    def __init__(self, parameters, lr: float, weight_decay: float = 0.0) -> None:
        self.parameters = list(parameters)
        if not self.parameters or not all(isinstance(p, Parameter) for p in self.parameters):
            raise ValueError(f"{type(self).__name__}: expected a non-empty list of Parameters")
        if not (isinstance(lr, (int, float)) and lr > 0):
            raise ValueError(f"{type(self).__name__}: lr must be > 0, found {lr!r}")
        if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
            raise ValueError(f"{type(self).__name__}: weight_decay must be >= 0, found {weight_decay!r}")
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.state: list[dict[str, np.ndarray]] = [{} for _ in self.parameters]
        self.steps = 0

    def zero_grad(self) -> None:
        for parameter in self.parameters:
            parameter.zero_grad()

    def step(self) -> None:
        self.check_ready()
        self.steps += 1
        for parameter, state in zip(self.parameters, self.state):
            self.update(parameter.value, parameter.grad, state)

    def check_ready(self) -> None:
        """Raise if a step cannot be taken yet (SDLM before its first curvature)."""

    def update(self, value, grad, state) -> None:
        """The update rule on one set of arrays: a parameter's value, gradient and state."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        """Arrays for a checkpoint: `steps`, `lr` and `state.<index>.<name>` per parameter."""
        arrays = {"steps": np.array(self.steps), "lr": np.array(self.lr)}
        for index, state in enumerate(self.state):
            for key, array in state.items():
                arrays[f"state.{index}.{key}"] = np.array(array, copy=True)
        return arrays

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        from ..errors import CheckpointError

        states: list[dict[str, np.ndarray]] = [{} for _ in self.parameters]
        for key, array in arrays.items():
            if not key.startswith("state."):
                continue
            _, index_text, name = key.split(".", 2)
            index = int(index_text)
            if index >= len(self.parameters) or array.shape != self.parameters[index].shape:
                raise CheckpointError(f"optimizer state {key!r} does not match the model's parameters")
            states[index][name] = np.array(array, dtype=self.parameters[index].value.dtype, copy=True)
        names = set().union(*states)
        for name in names:
            if not all(name in state for state in states):
                raise CheckpointError(f"optimizer state {name!r} is missing for some parameters")
        self.state = states
        self.steps = int(arrays["steps"])
        self.lr = float(arrays["lr"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.lr}, weight_decay={self.weight_decay})"


class SGD(Optimizer):
    """Stochastic gradient descent; with `momentum` > 0, heavy-ball or Nesterov momentum."""

    name = "sgd"

    def __init__(self, parameters, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(parameters, lr, weight_decay)
        if not 0 <= momentum < 1:
            raise ValueError(f"SGD: momentum must be in [0, 1), found {momentum!r}")
        if nesterov and momentum == 0:
            raise ValueError("SGD: nesterov needs momentum > 0")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def update(self, value, grad, state):
        if self.momentum:
            momentum_update(value, grad, state, self.lr, self.weight_decay, self.momentum, self.nesterov)
        else:
            sgd_update(value, grad, state, self.lr, self.weight_decay)


class Adam(Optimizer):
    """Adam; `decoupled_weight_decay=True` (or the class AdamW) gives AdamW."""

    name = "adam"

    def __init__(self, parameters, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 decoupled_weight_decay=False):
        super().__init__(parameters, lr, weight_decay)
        if not all(0 <= b < 1 for b in betas):
            raise ValueError(f"{type(self).__name__}: betas must be in [0, 1), found {betas!r}")
        self.beta1, self.beta2 = map(float, betas)
        self.eps = float(eps)
        self.decoupled = bool(decoupled_weight_decay)

    def update(self, value, grad, state):
        adam_update(value, grad, state, self.lr, self.weight_decay, self.beta1, self.beta2,
                    self.eps, self.steps, self.decoupled)


class AdamW(Adam):
    name = "adamw"

    def __init__(self, parameters, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(parameters, lr, betas, eps, weight_decay, decoupled_weight_decay=True)


class SDLM(Optimizer):
    """Stochastic diagonal Levenberg–Marquardt (LeCun et al. 1998, appendix C).

    Each parameter θ_k gets its own step ε_k = lr / (mu + h_kk), where h_kk is the
    Gauss–Newton diagonal second derivative of the loss, averaged over some patterns (500 in
    the paper) before each pass and held fixed during it. The loop is:

        estimate_curvature(model, loss, x[:500], y[:500])   # fills each parameter's .curvature
        optimizer.set_curvature()                           # h ← curvature, until the next call
        for each batch: forward, loss, backward, optimizer.step()

    Args:
        parameters: a list of `Parameter`. lr: η, > 0. mu: μ > 0 (the paper's η schedule and
            μ are in `lenet5.zoo.lecun1998`, which the reference engine does not import). weight_decay: L2 coefficient λ ≥ 0, added
            to the gradient before the step.

    h lives in each parameter's state as `state[i]["h"]`, like Adam's moments, so
    `state_dict()` saves it and `load_state_dict()` restores it exactly. `step()` before the first
    `set_curvature()` (or a loaded h) is an error: a step of lr/mu is fifty times the step
    the paper intends.
    """

    name = "sdlm"

    def __init__(self, parameters, lr: float, mu: float, weight_decay: float = 0.0) -> None:
        super().__init__(parameters, lr, weight_decay)
        if not (isinstance(mu, (int, float)) and mu > 0):
            raise ValueError(f"SDLM: mu must be > 0, found {mu!r}")
        self.mu = float(mu)

    def set_curvature(self) -> None:
        """h ← each parameter's `curvature` (already averaged over patterns), copied, so
        later changes to `curvature` leave the steps alone until the next call."""
        curvatures = [parameter.curvature for parameter in self.parameters]
        if not all(np.isfinite(h).all() and (h >= 0).all() for h in curvatures):
            raise ValueError("SDLM.set_curvature: curvature must be finite and >= 0; "
                             "fill it with estimate_curvature first")
        for state, h in zip(self.state, curvatures):
            state["h"] = h.copy()

    def check_ready(self) -> None:
        if not all("h" in state for state in self.state):
            raise RuntimeError("SDLM.step: no curvature yet; call estimate_curvature(...) and "
                               "set_curvature() before the first step")

    def update(self, value, grad, state):
        sdlm_update(value, grad, state, self.lr, self.weight_decay, self.mu)

    def __repr__(self) -> str:
        return f"SDLM(lr={self.lr}, mu={self.mu}, weight_decay={self.weight_decay})"
