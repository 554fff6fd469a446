"""FastModel: a reference `Sequential` compiled into fast steps that share its parameters.

This is the backend-neutral program: the step list compiled from the model, the fusion
matcher (fusion.py) and the inference plan (plan.py). Which kernels run each step is the
backend's (backends.py): the compiled one (Numba, threaded) where Numba is installed, the
NumPy one otherwise or when asked for.

    model = build_model("lenet5")              # the reference model (lenet5.nn)
    fast = FastModel(model)                    # the same weights, run by the fast engine
    optimizer = Adam(model.parameters(), lr=1e-3)
    logits = fast.forward(x)                   # batch-first in, batch-first out
    loss, dlogits = SoftmaxCrossEntropy.value_and_grad(logits, y)
    fast.backward(dlogits, input_grad=False)   # fills model's parameter gradients
    optimizer.step()

Each speed-up can be switched off, which is how the optimisation ladder in
`benchmarks/bench.py` measures what each one is worth and how the tests check each against
the reference engine: `blocked` (cache-sized blocks of the convolution's column matrix),
`fused` (BatchNorm2D → MaxPool2D → ReLU as one training step, fusion.py; with `plan`, on the
compiled backend, Conv2D → MaxPool2D → ReLU as one prediction step too) and `plan` (the
folded inference plan for predictions, plan.py). The batch-last layout itself is always on.
"""

from __future__ import annotations

import contextlib

import numpy as np

from ..nn.checks import as_float
from ..nn.predicting import Predicting, evaluating
from ..nn.sequential import leaf_layers
from .backends import get_backend
from .conv import ConvStep
from .fusion import fuse
from .layout import batch_last_copy, to_batch_first, to_batch_last
from .plan import inference_layers
from .step import ReferenceStep
from .threads import blas_threads


class FastModel(Predicting):
    """Runs a reference model with the fast engine; see the module docstring.

    Args:
        model: a `lenet5.nn.Sequential` (or any layer). Its parameters, buffers, modes and
            generators stay the model's: train, save or load it with or without this wrapper.
        backend: "auto" (compiled where Numba is installed, else numpy), "compiled" or "numpy"
            (`lenet5.fast.backends`).
        threads: the threads the compiled kernels and BLAS run on (None: as they are set).
            Results do not depend on it (compiled/jit.py).
        blocked, fused, plan: the speed-ups, each on by default.
    """

    def __init__(self, model, *, backend="auto", threads: int | None = None, blocked: bool = True,
                 fused: bool = True, plan: bool = True) -> None:
        self.model = model
        self.backend = get_backend(backend)
        self.threads = threads
        self.blocked, self.fused, self.plan = blocked, fused, plan
        self.steps = [self.compile(layer) for layer in leaf_layers(model)]
        self._run = None  # the steps of the last training-or-eval forward, for its backward

    def compile(self, layer):
        """The fast step that runs `layer`."""
        kind = self.backend.steps.get(type(layer), ReferenceStep)
        if kind is ConvStep:  # the NumPy step alone has the blocking switch (the ladder's rung)
            return ConvStep(layer, blocked=self.blocked)
        return kind(layer)

    def _threads(self):
        """The thread counts a pass runs with. The compiled backend keeps BLAS on one thread
        and parallelises inside its kernels: Numba's OpenMP threads spin between parallel
        regions, and BLAS threads beside them would fight them for the cores (measured: a
        lenet5 step took 2.4 times as long with both on two threads)."""
        stack = contextlib.ExitStack()
        if self.backend.threaded:
            from .compiled.jit import threads

            stack.enter_context(blas_threads(1))
            if self.threads is not None:
                stack.enter_context(threads(self.threads))
        elif self.threads is not None:
            stack.enter_context(blas_threads(self.threads))
        return stack

    # -- the passes, as the reference model's ----------------------------------------------
    def forward(self, x, distortion=None) -> np.ndarray:
        """Batch-first in, batch-first out. The input is copied once into batch-last order so
        that every step reads contiguous memory: im2col on the strided view of an NCHW batch
        took 4.4 of the relu model's 10.4 s per epoch (measured by benchmarks/bench.py).

        distortion: a `lenet5.data.augment.Distortion` applied to x first (the trainer's
        training distortions).
        """
        self._run = self.training_steps()
        with self._threads():
            # Inside the thread limits: BLAS threads woken by the elastic field's products
            # would spin beside the kernels' threads (measured: an elastic distortion at batch
            # 128 added 6.5 ms to a lenet5 step outside the limits, 2.4 ms inside).
            if distortion is not None:
                x = distortion.apply(x)
            h = batch_last_copy(as_float(x))
            for step in self._run:
                h = step.forward(h)
        return to_batch_first(h)

    def training_steps(self) -> list:
        """The steps a forward pass runs now: with `fused`, each training-mode BatchNorm2D →
        MaxPool2D (→ ReLU) as one step (decided anew each pass, from the layers' modes)."""
        return fuse(self.steps, (self.backend.norm_pool_relu,)) if self.fused else self.steps

    def backward(self, dout, input_grad: bool = True):
        """Backpropagate `dout` (batch-first), adding to every parameter's `grad`.

        With `input_grad=False` only parameter gradients are computed and None is returned,
        which spares the first layer's input gradient (a training step never uses it).
        """
        if self._run is None:
            raise RuntimeError("FastModel: backward() needs a forward() first")
        dout = to_batch_last(np.asarray(dout))
        with self._threads():
            for step in reversed(self._run[1:]):
                dout = step.backward(dout)
            if not input_grad:
                self._run[0].backward_parameters(dout)
                return None
            return to_batch_first(self._run[0].backward(dout))

    __call__ = forward

    # -- predictions -----------------------------------------------------------------------
    def predict_logits(self, x, batch_size: int = 256) -> np.ndarray:
        """Logits (N, K) of the eval-mode model, through its folded inference plan.

        The default batch of 256: on the compiled kernels it ran 1.04 to 1.19 times as many
        images a second as 64, and within 10% of the best of 64, 128, 256, 512 and 1,000, for
        each of lenet5, relu, classic, lenet5-wide and lenet5-1998 (the 10,000 test digits,
        two threads, 2026-12-06). The model's modes are put back after: training may go on.
        """
        with evaluating(self.model), self._threads():
            steps = self.inference_steps()
            chunks = []
            for start in range(0, len(x), batch_size):
                h = batch_last_copy(as_float(x[start : start + batch_size]))
                for step in steps:
                    h = step.forward(h)
                chunks.append(np.array(to_batch_first(h)))
        return np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)

    def inference_steps(self) -> list:
        """The steps a prediction runs, from the current weights (call it in eval mode): with
        `plan`, those of the folded inference plan, fused where the backend fuses them."""
        if not self.plan:
            return self.steps
        steps = [self.compile(layer) for layer in inference_layers(leaf_layers(self.model))]
        if self.fused and self.backend.inference_fusions:
            steps = fuse(steps, self.backend.inference_fusions)
        return steps

    # -- what a trainer needs of it ---------------------------------------------------------
    def parameters(self):
        return self.model.parameters()

    def train(self, mode: bool = True) -> "FastModel":
        self.model.train(mode)
        return self

    def eval(self) -> "FastModel":
        return self.train(False)

    def close(self) -> None:
        """Nothing to release: its buffers are ordinary memory, freed with it (`Engine.close`:
        a backend on a device would free the device's memory here)."""

    def __repr__(self) -> str:
        return (f"FastModel({getattr(self.model, 'name', type(self.model).__name__)}, backend={self.backend.name!r}, "
                f"threads={self.threads}, blocked={self.blocked}, fused={self.fused}, plan={self.plan})")
