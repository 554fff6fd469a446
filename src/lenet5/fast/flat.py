"""One flat buffer for every parameter: an optimiser step as a handful of NumPy calls.

The reference optimisers (`lenet5.nn.optim`) step each parameter in turn: LeNet-5 has 18
parameter arrays, and the per-call overhead of stepping them one by one was 5% of an epoch.
`FlatOptimizer(optimizer)` is the opt-in that removes it: it copies every parameter's value
and gradient into one flat array each and leaves each parameter holding views into them, so
the model, the fast engine and the optimiser all see the same numbers; a step then runs the
optimiser's own update rule once, over the flat arrays (or, asked for, Adam's and SDLM's as one
compiled loop). Every update rule is elementwise, so the result is the same, bit for bit, as
stepping the parameters one by one (tested).

If something replaces a parameter's array (`Module.to`, a load that rebinds), the next step
flattens again. The optimiser's state (momentum, Adam's moments, SDLM's h) is flat the same
way while stepping; `state_dict` and `load_state_dict` give and take it per parameter, as the
reference optimiser's, so checkpoints are the same files with or without the buffer.
"""

from __future__ import annotations

import numpy as np


class FlatOptimizer:
    """`optimizer` (a `lenet5.nn` optimiser) stepping its parameters as one flat buffer."""

    def __init__(self, optimizer, compiled: bool = False) -> None:
        self.optimizer = optimizer
        self.flat_state: dict[str, np.ndarray] = {}
        # With `compiled`, Adam and SDLM step in one compiled loop (`compiled/optim.py`), the
        # same bits as their own update rule; needs Numba.
        self._compiled_update = None
        if compiled:
            from .compiled.optim import compiled_update

            self._compiled_update = compiled_update(optimizer)
        self._flatten()

    # What the trainer and the checkpoint read and set, the optimiser's own.
    @property
    def parameters(self):
        return self.optimizer.parameters

    @property
    def name(self) -> str:
        return self.optimizer.name

    @property
    def lr(self) -> float:
        return self.optimizer.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self.optimizer.lr = value

    @property
    def steps(self) -> int:
        return self.optimizer.steps

    def _flatten(self) -> None:
        """Move every parameter's value and gradient, and the optimiser's per-parameter state,
        into flat arrays; each parameter keeps views into them."""
        parameters = self.optimizer.parameters
        dtype = np.result_type(*[p.value.dtype for p in parameters])
        total = sum(p.size for p in parameters)
        self.flat_value, self.flat_grad = np.empty(total, dtype), np.empty(total, dtype)
        self.slices = []
        offset = 0
        for parameter in parameters:
            span = slice(offset, offset + parameter.size)
            value = self.flat_value[span].reshape(parameter.shape)
            grad = self.flat_grad[span].reshape(parameter.shape)
            value[...], grad[...] = parameter.value, parameter.grad
            parameter.value, parameter.grad = value, grad
            self.slices.append(span)
            offset += parameter.size
        self._gather_state()

    def _gather_state(self) -> None:
        """The optimiser's per-parameter state, as flat arrays (keys every parameter has)."""
        states = self.optimizer.state
        keys = set(states[0]).intersection(*states[1:]) if states else set()
        self.flat_state = {key: np.concatenate([np.asarray(state[key], self.flat_value.dtype).reshape(-1)
                                                for state in states]) for key in sorted(keys)}

    def _scatter_state(self) -> None:
        """The flat state back into the optimiser's per-parameter state, as views."""
        for key, array in self.flat_state.items():
            for state, span, parameter in zip(self.optimizer.state, self.slices, self.optimizer.parameters):
                state[key] = array[span].reshape(parameter.shape)

    def _is_flat(self) -> bool:
        return all(p.value.base is self.flat_value and p.grad.base is self.flat_grad for p in self.parameters)

    def gradient_arrays(self) -> list[np.ndarray]:
        """Arrays holding every parameter's gradient: the one flat buffer while the parameters'
        gradients are views of it (the trainer checks them for NaN and inf after each step)."""
        return [self.flat_grad] if self._is_flat() else [p.grad for p in self.parameters]

    def zero_grad(self) -> None:
        if self._is_flat():
            self.flat_grad.fill(0.0)
        else:
            self.optimizer.zero_grad()

    def step(self) -> None:
        if not self._is_flat():
            self._scatter_state()
            self._flatten()
        self.optimizer.check_ready()
        self.optimizer.steps += 1
        update = self._compiled_update or self.optimizer.update
        update(self.flat_value, self.flat_grad, self.flat_state)

    def set_curvature(self) -> None:
        """SDLM's h from the parameters' curvature (`SDLM.set_curvature`), then flat."""
        self._scatter_state()
        self.optimizer.set_curvature()
        self._gather_state()

    def state_dict(self) -> dict[str, np.ndarray]:
        self._scatter_state()
        return self.optimizer.state_dict()

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        self.optimizer.load_state_dict(arrays)
        self._gather_state()

    def __repr__(self) -> str:
        return f"FlatOptimizer({self.optimizer!r})"
