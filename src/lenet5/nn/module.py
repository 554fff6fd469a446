"""The base of every layer and model: the two passes, parameters, buffers, modes, state dicts.

A layer subclasses `Module` and writes `forward(x)` and `backward(dout)` on NCHW arrays
(batch first), plus `output_shape` when it changes the shape.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterator

import numpy as np

from ..errors import CheckpointError
from .parameter import Parameter


class Module:
    """Something with a forward and a backward pass, and possibly parameters and buffers.

    Parameters are `Parameter` attributes; buffers are arrays named in `buffer_names`
    (state that is saved but never optimised, like BatchNorm's running statistics); child
    modules are `Module` attributes. All three are found by attribute order, recursively.

    The contract of every layer: `forward(x)` keeps what its backward pass needs in a
    private cache and never writes into `x`; `backward(dout)` adds to each parameter's
    `grad` and returns the gradient with respect to the last forward's input, never
    writing into `dout`.
    """

    buffer_names: tuple[str, ...] = ()
    # Prefix used by Sequential to name unnamed layers: conv1, pool1, fc1, ...
    prefix = "layer"

    def __init__(self) -> None:
        self.training = True

    # -- the passes ---------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        """(N, ...) in, (N, ...) out."""
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Gradient of the loss w.r.t. the last forward's input; fills parameter gradients."""
        raise NotImplementedError

    def backward_curvature(self, d2out: np.ndarray) -> np.ndarray:
        """The Gauss–Newton diagonal second derivative w.r.t. the last forward's input,
        diag(Jᵀ diag(d2out) J); adds the same for each parameter into `parameter.curvature`.
        Only the layers of LeNet-5 (1998) have it; see `curvature.py` for the rule."""
        raise NotImplementedError(
            f"{type(self).__name__} has no backward_curvature: the second-order pass (for SDLM) covers "
            "the layers of LeNet-5 (1998): Conv2D, Subsampling, ScaledTanh, Dense, Flatten, RBF, Sequential")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The output shape for one sample of `input_shape` (no batch axis)."""
        return tuple(input_shape)

    # -- the module tree ----------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        """This module (named `prefix`, "" at the top) and every module inside it, depth first."""
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> list["Module"]:
        return [module for _, module in self.named_modules()]

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, value
        for name, child in self.named_children():
            yield from child.named_parameters(f"{prefix}{name}.")

    def parameters(self) -> list[Parameter]:
        return [parameter for _, parameter in self.named_parameters()]

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        for name in self.buffer_names:
            yield prefix + name, getattr(self, name)
        for name, child in self.named_children():
            yield from child.named_buffers(f"{prefix}{name}.")

    def num_parameters(self, trainable: bool = True) -> int:
        """Trainable entries (each child counts its own, so a layer can leave out entries it
        never learns), or with trainable=False the buffers' entries."""
        if not trainable:
            return sum(buffer.size for _, buffer in self.named_buffers())
        own = sum(value.size for value in vars(self).values() if isinstance(value, Parameter))
        return own + sum(child.num_parameters() for _, child in self.named_children())

    # -- modes ----------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        for module in self.modules():
            module.training = mode
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def to(self, dtype) -> "Module":
        """Convert every parameter and buffer to `dtype` (float32 or float64), in place."""
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"{type(self).__name__}.to: dtype must be float32 or float64, found {dtype}")
        for parameter in self.parameters():
            parameter.astype(dtype)
        for module in self.modules():
            for name in module.buffer_names:
                setattr(module, name, getattr(module, name).astype(dtype))
        return self

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Every parameter and buffer by dotted name, copied."""
        state: OrderedDict[str, np.ndarray] = OrderedDict()
        for name, parameter in self.named_parameters():
            state[name] = parameter.value.copy()
        for name, buffer in self.named_buffers():
            state[name] = np.array(buffer, copy=True)
        return state

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Copy arrays from `state` into the parameters and buffers, checking first.

        Nothing is changed unless every check passes. With `strict`, a missing key or an
        extra key is an error; a shape mismatch is always one. The error names each key.
        """
        own = self.state_dict()
        missing = [name for name in own if name not in state]
        unexpected = [name for name in state if name not in own]
        problems = []
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        for name, value in own.items():
            if name in state and np.shape(state[name]) != value.shape:
                problems.append(
                    f"shape mismatch for {name}: expected {value.shape}, found {np.shape(state[name])}"
                )
            # Checked here, not left to the copy below, which would fail with some arrays copied.
            elif name in state and np.asarray(state[name]).dtype.kind not in "biuf":
                problems.append(f"{name} must hold numbers, found dtype {np.asarray(state[name]).dtype}")
        if problems:
            raise CheckpointError("cannot load state dict: " + "; ".join(problems))
        parameters = dict(self.named_parameters())
        buffer_owners = {
            f"{module_name}.{name}" if module_name else name: (module, name)
            for module_name, module in self.named_modules()
            for name in module.buffer_names
        }
        for name, value in state.items():
            if name in parameters:
                # In place, so views held elsewhere (an optimizer's flat buffer) stay valid.
                target = parameters[name]
                target.value[...] = value
                target.grad.fill(0.0)
            elif name in buffer_owners:
                owner, attribute = buffer_owners[name]
                dtype = getattr(owner, attribute).dtype
                setattr(owner, attribute, np.array(value, dtype=dtype, copy=True))

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"
