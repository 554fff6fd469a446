"""What rank 0 sends of its model before each call, and where each worker's gradients land.

Rank 0's model stays the model: the optimiser updates it, the user may change it between
calls. So before every call rank 0 copies into shared memory its parameter values, its
buffers (BatchNorm's running statistics) and each module's train/eval mode. A worker's
parameters are views of that memory: their values are rank 0's copy, read in place, and
their gradients are the worker's own area, which rank 0 adds to the model's after a
backward pass. Buffers and modes are copied into the worker's model at each call.
"""

from __future__ import annotations

import numpy as np


class ModelState:
    """The parameters, buffers and modules of `model`, found once, and their shared areas.

    Found once because a call must not walk the model's tree: a step makes two calls, and a
    walk costs a few hundred microseconds. So replacing a layer needs a new DataParallel;
    converting the arrays (`model.to(np.float64)`) changes `current_signature()`, which
    restarts the workers.
    """

    def __init__(self, model) -> None:
        self.model = model
        self.parameters = model.parameters()
        self.modules = model.modules()
        self.buffer_slots = [(module, name) for module in self.modules for name in module.buffer_names]
        self.signature = self.current_signature()

    def buffers(self) -> list[np.ndarray]:
        # Looked up at each call: BatchNorm replaces its running statistics as it updates them.
        return [getattr(module, name) for module, name in self.buffer_slots]

    def current_signature(self) -> tuple:
        """The shapes and dtypes of the parameters and buffers, which the shared areas follow."""
        return (tuple((p.value.shape, p.value.dtype.str) for p in self.parameters),
                tuple((b.shape, b.dtype.str) for b in self.buffers()))

    def layout(self, world: int):
        """(name, shape, dtype) of the shared arrays: values, each worker's grads, buffers, modes."""
        values = [(f"value.{i}", p.value.shape, p.value.dtype) for i, p in enumerate(self.parameters)]
        grads = [(f"grad.{rank}.{i}", p.value.shape, p.value.dtype)
                 for rank in range(1, world) for i, p in enumerate(self.parameters)]
        buffers = [(f"buffer.{i}", b.shape, b.dtype) for i, b in enumerate(self.buffers())]
        return values + grads + buffers + [("modes", (len(self.modules),), np.bool_)]

    # -- rank 0 -------------------------------------------------------------------------
    def send(self, memory) -> None:
        """Copy the model's parameter values, buffers and modes into `memory`."""
        for i, parameter in enumerate(self.parameters):
            np.copyto(memory[f"value.{i}"], parameter.value)
        for i, buffer in enumerate(self.buffers()):
            np.copyto(memory[f"buffer.{i}"], buffer)
        memory["modes"][:] = [module.training for module in self.modules]

    def add_gradients(self, memory, world: int) -> None:
        """Add the workers' gradients to the model's, in rank order."""
        for rank in range(1, world):
            for i, parameter in enumerate(self.parameters):
                parameter.grad += memory[f"grad.{rank}.{i}"]

    # -- a worker -----------------------------------------------------------------------
    def bind(self, memory, rank: int) -> None:
        """Make this worker's parameters views of the shared values and of its gradient area."""
        for i, parameter in enumerate(self.parameters):
            parameter.value = memory[f"value.{i}"]
            parameter.grad = memory[f"grad.{rank}.{i}"]

    def receive(self, memory) -> None:
        """Load rank 0's buffers and modes into this worker's model."""
        for i, buffer in enumerate(self.buffers()):
            np.copyto(buffer, memory[f"buffer.{i}"])
        for module, training in zip(self.modules, memory["modes"]):
            module.training = bool(training)

    def clear_gradients(self) -> None:
        for parameter in self.parameters:
            parameter.grad.fill(0)
