"""Rank 0's end of a data-parallel group: the worker processes, and waits that never hang.

Workers are spawned (see worker.py) with BLAS told to use one thread by the environment
they start with; this process's environment is put back right after. Every wait for a
worker is bounded by the pool's timeout, and between its slices the pool looks at each
worker's exit code, so a worker that dies is reported within a slice and one that stops
answering (stalled, or SIGSTOP'd) within the timeout, as a ParallelError naming it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
import weakref
from dataclasses import dataclass

import numpy as np

from ..program import FastModel
from . import calls
from .calls import Call, record_length
from .errors import ParallelError
from .masks import DropoutMasks
from .memory import typed
from .state import ModelState
from .transport import Channels, Group
from .waiting import acquire
from .worker import serve

START_SECONDS = 120.0  # a worker's start: a new interpreter importing NumPy and lenet5
STOP_SECONDS = 2.0  # how long an idle worker has to quit before it is killed
BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class Capacity:
    """Bytes of each worker's input and output areas, and of the Dropout masks.

    Sized to the calls, not generously: the shared block is zeroed, so every byte of it is
    memory this process holds.
    """

    share_bytes: int
    mask_bytes: int

    def holds(self, other: "Capacity") -> bool:
        return self.share_bytes >= other.share_bytes and self.mask_bytes >= other.mask_bytes

    def union(self, other: "Capacity") -> "Capacity":
        return Capacity(max(self.share_bytes, other.share_bytes), max(self.mask_bytes, other.mask_bytes))

    def layout(self, world: int):
        workers = world - 1  # rank 0 reads and writes its own arrays
        return [("inputs", (workers, self.share_bytes), np.uint8), ("outputs", (workers, self.share_bytes), np.uint8),
                ("masks", (self.mask_bytes,), np.uint8)]


class WorkerPool:
    """Workers 1 … world − 1 computing shares of `model`'s calls; this process is rank 0.

    Args:
        model: the reference model; each worker receives a copy at its start.
        world: processes in all, this one included.
        timeout: seconds a worker may take to answer any one wait.
        capacity: the sizes of the shared input, output and mask areas.
        backend: the name of the backend every process runs.
        transform_kind: the class the workers rebuild distortions with (None: no distortions).

    `fast` is rank 0's FastModel, whose BatchNorm sums and Dropout masks go through the group.
    """

    def __init__(self, model, world: int, timeout: float, capacity: Capacity, backend: str = "auto",
                 transform_kind=None) -> None:
        context = multiprocessing.get_context("spawn")
        self.world, self.timeout, self.capacity = world, timeout, capacity
        self.state = ModelState(model)
        payload = self.state.layout(world) + capacity.layout(world) + [("call", (record_length(world),), np.int64)]
        try:
            self.channels = Channels(context, world, payload)
        except OSError as error:  # a full /dev/shm or temporary directory, a file-size limit
            raise ParallelError(f"cannot allocate shared memory for the data-parallel workers: "
                                f"{error.strerror or error}; run with one process (--workers 1)") from None
        self.memory = self.channels.memory
        self.processes = [context.Process(target=serve, args=(rank, self.channels, model, backend, transform_kind),
                                          daemon=True,
                                          name=f"lenet5-worker-{rank}") for rank in range(1, world)]
        self._finalizer = weakref.finalize(self, stop_workers, self.processes, self.channels, True)
        try:
            with single_threaded_blas_environment():
                for process in self.processes:
                    process.start()
            for rank in range(1, world):
                self.wait_for(rank, self.channels.done[rank], max(timeout, START_SECONDS))
        except BaseException:
            self.close(graceful=False)
            raise
        self.masks = DropoutMasks(self.memory["masks"])
        self.fast = FastModel(model, backend=backend, threads=1, all_sum=Group(self.channels, 0, self.wait_for).all_sum,
                              dropout_masks=self.masks.rows)

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    # -- calls ----------------------------------------------------------------------------
    def put_input(self, rank: int, array: np.ndarray) -> None:
        np.copyto(typed(self.memory["inputs"][rank - 1], array.shape, array.dtype), array)

    def output(self, rank: int, shape, dtype) -> np.ndarray:
        return typed(self.memory["outputs"][rank - 1], shape, dtype).copy()

    def post(self, call: Call) -> None:
        """Send `call` to every worker, with the model's state unless it is a backward pass
        (which runs on the state its forward pass was sent)."""
        if call.kind != calls.BACKWARD:
            self.state.send(self.memory)
        call.write(self.memory["call"])
        for rank in range(1, self.world):
            self.channels.calls[rank].release()

    def wait_answers(self) -> None:
        for rank in range(1, self.world):
            self.wait_for(rank, self.channels.done[rank])

    # -- waiting --------------------------------------------------------------------------
    def wait_for(self, rank: int, semaphore, timeout: float | None = None) -> None:
        """Acquire `semaphore`, released by worker `rank`, or raise ParallelError."""
        timeout = self.timeout if timeout is None else timeout
        if not acquire(semaphore, timeout, self.check_workers):
            self.check_workers()  # perhaps it died rather than stalled
            raise ParallelError(f"{self._name(rank)} did not answer within {timeout:g} s")

    def check_workers(self) -> None:
        """Raise ParallelError if a worker has exited, with its error message if it left one."""
        for rank, process in enumerate(self.processes, start=1):
            code = process.exitcode
            if code is None:
                continue
            message = self.channels.error(rank)
            if message:
                raise ParallelError(f"{self._name(rank)} failed: {message}")
            raise ParallelError(f"{self._name(rank)} exited unexpectedly ({_exit_reason(code)})")

    def _name(self, rank: int) -> str:
        return f"data-parallel worker {rank} (pid {self.processes[rank - 1].pid})"

    # -- the end --------------------------------------------------------------------------
    def close(self, graceful: bool = True) -> None:
        """Stop the workers: asked to quit if `graceful` (they are idle), killed if not."""
        if self._finalizer.detach() is not None:
            stop_workers(self.processes, self.channels, graceful)


def stop_workers(processes, channels: Channels, graceful: bool) -> None:
    """Ask idle workers to quit, kill what is left after STOP_SECONDS, and reap them all.

    A worker caught mid-call, or stalled, cannot read a quit call: it is killed (SIGKILL
    also ends a SIGSTOP'd process). Nothing is lost: the shared memory's file was unlinked
    when it was made.
    """
    started = [(rank, process) for rank, process in enumerate(processes, start=1) if process.pid is not None]
    if graceful:
        Call(calls.QUIT).write(channels.memory["call"])
        for rank, process in started:
            channels.calls[rank].release()
        deadline = time.monotonic() + STOP_SECONDS
        for _, process in started:
            process.join(max(0.0, deadline - time.monotonic()))
    for _, process in started:
        if process.exitcode is None:
            process.kill()
        process.join()


def _exit_reason(code: int) -> str:
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


@contextlib.contextmanager
def single_threaded_blas_environment():
    """Processes started in the block run BLAS on one thread; this one's variables are put back."""
    saved = {name: os.environ.get(name) for name in BLAS_VARIABLES}
    os.environ.update(dict.fromkeys(BLAS_VARIABLES, "1"))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
