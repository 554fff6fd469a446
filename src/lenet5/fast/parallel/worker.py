"""A worker process's life: set itself up, then answer rank 0's calls until told to quit.

A worker is spawned, not forked (a fork would copy a process whose BLAS threads may be
mid-operation), with BLAS on one thread. It receives the model at its start, makes its
parameters views of the shared values and of its own gradient area, and wraps the model in
a FastModel whose BatchNorm sums and Dropout masks go through the group. Ctrl-C is rank
0's to handle, so the worker ignores SIGINT; SIGTERM stops it. If it raises, it stores the
message for rank 0 and exits; if rank 0 dies, the worker notices within a wait slice and
exits too.
"""

from __future__ import annotations

import multiprocessing
import signal
import traceback

import numpy as np

from ..program import FastModel
from ..threads import blas_threads
from . import calls
from .calls import Call
from .masks import DropoutMasks
from .memory import typed
from .state import ModelState
from .transport import Channels, Group
from .waiting import acquire

IDLE_SLICE_SECONDS = 0.5  # how often an idle worker checks that rank 0 still lives


def serve(rank: int, channels: Channels, model, backend: str = "auto", transform_kind=None) -> None:
    """The target of worker `rank`'s process: `backend` names the backend its steps run,
    `transform_kind` the class it rebuilds each batch's distortion with, from its words."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    parent = multiprocessing.parent_process()

    def exit_if_orphaned() -> None:
        if parent is not None and not parent.is_alive():
            raise SystemExit(0)

    def wait_for(peer: int, semaphore) -> None:
        # No deadline: rank 0 times the exchanges and stops a group that stalls.
        acquire(semaphore, None, exit_if_orphaned)

    try:
        # Overflow in a share reaches rank 0 as non-finite logits or gradients, which the
        # trainer reports in one line; a warning from each worker would only add noise.
        with blas_threads(1), np.errstate(all="ignore"):
            worker = Worker(rank, channels, model, wait_for, backend, transform_kind)
            channels.done[rank].release()  # ready
            while True:
                acquire(channels.calls[rank], None, exit_if_orphaned, IDLE_SLICE_SECONDS)
                call = Call.read(channels.memory["call"], channels.world)
                if call.kind == calls.QUIT:
                    return
                worker.answer(call)
                channels.done[rank].release()
    except SystemExit:
        raise
    except BaseException as error:  # noqa: BLE001  (rank 0 raises it, reading the message)
        channels.report_error(rank, describe(error))
        raise SystemExit(1) from None


def describe(error: BaseException) -> str:
    """'Type: message (at file:line in function)', the innermost frame of the traceback."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    return f"{type(error).__name__}: {error}{where}"


class Worker:
    """A worker's model, its end of the group, and how it answers each kind of call."""

    def __init__(self, rank: int, channels: Channels, model, wait_for, backend="auto", transform_kind=None) -> None:
        self.rank, self.memory = rank, channels.memory
        self.transform_kind = transform_kind
        self.state = ModelState(model)
        self.state.bind(self.memory, rank)  # before FastModel: its steps read these parameters
        self.masks = DropoutMasks(self.memory["masks"])
        # One thread of compiled kernels per process: the processes already hold the cores.
        self.fast = FastModel(model, backend=backend, threads=1, all_sum=Group(channels, rank, wait_for).all_sum,
                              dropout_masks=self.masks.rows)

    def answer(self, call: Call) -> None:
        start, stop = call.shares[self.rank]
        inputs = typed(self.memory["inputs"][self.rank - 1], (stop - start,) + call.sample_shape, call.dtype)
        if call.kind == calls.FORWARD:
            self.state.receive(self.memory)
            self.masks.use(self.fast.dropout_layers(call.sample_shape), call.total, (start, stop))
            distortion = None if self.transform_kind is None else self.transform_kind.from_words(call.distortion)
            # A copy (or the distorted rows, a new array): the steps may keep their input for
            # backward, and the area is reused.
            rows = inputs.copy() if distortion is None else distortion.apply(inputs, start)
            self.put_output(self.fast.forward(rows))
        elif call.kind == calls.BACKWARD:
            self.state.clear_gradients()
            dx = self.fast.backward(inputs, input_grad=call.input_grad)
            if dx is not None:
                self.put_output(dx)
        elif call.kind == calls.PREDICT:
            if stop > start:
                self.state.receive(self.memory)
                self.put_output(self.fast.predict_logits(inputs, call.batch_size))
        else:
            raise ValueError(f"unknown call kind {call.kind}")

    def put_output(self, array: np.ndarray) -> None:
        np.copyto(typed(self.memory["outputs"][self.rank - 1], array.shape, array.dtype), array)
