"""Data parallelism over processes: every batch is split, each process computes a share on its own core.

Why processes: a training step is hundreds of short NumPy calls, and between them Python
holds the GIL, so two threads ran no faster than one; OpenBLAS's own second thread helps
little with LeNet's small products. A forked process per core, each with BLAS on one
thread, does use the second core (benchmarks/processes.py measures it).

How a step runs on W processes. Rank 0 is the caller's process and owns the model the
optimiser updates; ranks 1..W−1 are forked workers, each with a copy of the model.
1. Rank 0 writes into shared memory the parameters, buffers, train/eval modes and random
   states, and each worker's share of the batch, then posts the step.
2. Every rank runs forward and backward on its share. The layers that mix samples ask the
   group for sums over all shares: BatchNorm for its batch mean, variance and the two sums
   of its backward pass (`all_sum`); Dropout draws the whole batch's mask and keeps its own
   columns (`batch_share`). So the batch statistics and masks are those of one process,
   and the loss gradient is scaled by share / batch so that the shares' parameter gradients
   add up to the batch's.
3. Each worker's parameter gradients live in shared memory; rank 0 adds them to its own,
   gathers the losses and logits, and its optimiser then steps as usual.
`all_sum` adds the shares in rank order, so every rank gets the same sums, bit for bit.

Ranks signal through counters in shared memory, read in a spin loop: a step needs a dozen
exchanges, and waking a sleeping process costs tens of microseconds each time. An idle
worker blocks on a pipe instead, so it takes no CPU between calls. The counters are plain
stores, which x86-64 keeps in order; other CPUs may reorder them, so this runs on x86-64
Linux only (`supported()`).
"""

from __future__ import annotations

import mmap
import os
import platform
import select
import signal
import time
import weakref

import numpy as np

from . import blas
from .loss import SoftmaxCrossEntropy

_active = None  # the Group this process is computing a share for, during a parallel pass

SLOT_LENGTH = 8192  # float64 values one all_sum can carry (BatchNorm sends 2 per channel + 1)
INPUT_BYTES = 16 * 2**20  # per worker: its share of a batch (training) or of a predict round
SPIN_SECONDS = 0.002  # an idle worker spins this long for the next call before it blocks
_TRAIN, _PREDICT, _QUIT = 1, 2, 3
# call number, kind, total, fused, input itemsize, input rank, input shape (6); then the
# (start, stop) of each rank's share
_HEADER = 12
_ERROR_BYTES = 2048
_LINE = 64  # bytes in a cache line


class ParallelError(RuntimeError):
    """A worker process failed or died; the message says which and why."""


def active() -> bool:
    """Whether this process is computing a share of a data-parallel pass now."""
    return _active is not None


def all_sum(vector: np.ndarray) -> np.ndarray:
    """`vector` summed over every process's share of the batch (itself outside a parallel pass)."""
    group = _active
    return vector if group is None else group.all_sum(vector)


def batch_share(local_size: int) -> tuple[int, int]:
    """(whole batch size, first sample of this process's share); (local_size, 0) outside a parallel pass."""
    group = _active
    return (local_size, 0) if group is None else (group.total, group.start)


def supported() -> bool:
    """Data parallelism needs fork and x86-64's ordered stores (see the module docstring)."""
    return hasattr(os, "fork") and platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64")


class _Model:
    """What a pool sends of a model, found once: parameters, buffers, modes, generators."""

    def __init__(self, model) -> None:
        from .sequential import _generators, _modules

        self.model = model
        self.modules = list(_modules(model))
        self.parameters = model.parameters()
        self.buffer_owners = [owner for _, owner in model._named_buffer_owners()]
        self.generators = _generators(model)
        for generator in self.generators:
            if generator.bit_generator.state["bit_generator"] != "PCG64":
                raise ValueError("DataParallel: Dropout generators must be PCG64 (numpy's default_rng)")
        self.shapes = [(p.value.shape, p.value.dtype) for p in self.parameters]

    def buffers(self) -> list[np.ndarray]:
        return [getattr(owner, name) for owner, name in self.buffer_owners]

    def unchanged(self) -> bool:
        return [(p.value.shape, p.value.dtype) for p in self.parameters] == self.shapes


def _areas(world: int, found: _Model):
    """The shared memory's areas, in order: (name, dtype, count)."""
    value_bytes = sum(_rounded(p.value.nbytes) for p in found.parameters)
    return [
        ("header", np.int64, _HEADER + 2 * world),
        # One counter per cache line: a rank spinning on one must not slow the rank writing another.
        ("counters", np.int64, 8 * world),
        ("done", np.int64, 8 * world),
        ("failed", np.int64, 8 * world),
        ("errors", np.uint8, _ERROR_BYTES * world),
        ("slots", np.float64, 2 * world * SLOT_LENGTH),
        ("values", np.uint8, value_bytes),
        ("grads", np.uint8, value_bytes * world),
        ("buffers", np.uint8, sum(_rounded(b.nbytes) for b in found.buffers())),
        ("losses", np.float64, 8 * world),
        ("modes", np.uint8, len(found.modules)),
        ("random", np.uint64, 6 * len(found.generators)),
        ("inputs", np.uint8, INPUT_BYTES * world),
        ("outputs", np.uint8, INPUT_BYTES * world),
    ]


def _rounded(nbytes: int) -> int:
    return -(-nbytes // _LINE) * _LINE


def _views(area: np.ndarray, arrays) -> list[np.ndarray]:
    """Views into the byte area `area` shaped and typed like `arrays`, one after another."""
    views, offset = [], 0
    for array in arrays:
        views.append(area[offset : offset + array.nbytes].view(array.dtype).reshape(array.shape))
        offset += _rounded(array.nbytes)
    return views


class Group:
    """One process's end of the shared memory: its rank, the areas, the exchange counters."""

    def __init__(self, memory: mmap.mmap, world: int, found: _Model) -> None:
        self.world, self.rank = world, 0
        self.total, self.start = 0, 0
        self.exchanges = 0
        offset, area = 0, {}
        for name, dtype, count in _areas(world, found):
            area[name] = np.frombuffer(memory, dtype, count, offset)
            offset += _rounded(area[name].nbytes)
        self.header = area["header"]
        self.counters, self.done, self.failed = area["counters"][::8], area["done"][::8], area["failed"][::8]
        self.errors = area["errors"].reshape(world, _ERROR_BYTES)
        self.slots = area["slots"].reshape(2, world, SLOT_LENGTH)
        self.values = _views(area["values"], [p.value for p in found.parameters])
        self.grads = [_views(rank_area, [p.value for p in found.parameters])
                      for rank_area in area["grads"].reshape(world, -1)]
        self.grad_areas = area["grads"].reshape(world, -1)
        self.buffers = _views(area["buffers"], found.buffers())
        self.losses = area["losses"][::8]
        self.modes, self.random = area["modes"], area["random"].reshape(-1, 6)
        self.inputs = area["inputs"].reshape(world, INPUT_BYTES)
        self.outputs = area["outputs"].reshape(world, INPUT_BYTES)
        self.peers_alive = None  # set by the owner: raises or exits if a peer is gone

    @staticmethod
    def size(world: int, found: _Model) -> int:
        return sum(_rounded(np.dtype(dtype).itemsize * count) for _, dtype, count in _areas(world, found))

    def all_sum(self, vector: np.ndarray) -> np.ndarray:
        vector = np.asarray(vector)
        flat = vector.reshape(-1)
        if flat.size > SLOT_LENGTH:
            raise ValueError(f"all_sum: {flat.size} values, a slot holds {SLOT_LENGTH}")
        self.exchanges += 1
        number = self.exchanges
        # Two sets of slots, alternating: a rank writes exchange k + 2 only after every rank
        # has written k + 1, which each does only after reading all of exchange k.
        slots = self.slots[number & 1]
        slots[self.rank, : flat.size] = flat
        self.counters[self.rank] = number
        for rank in range(self.world):
            self.wait_for(self.counters, rank, number)
        total = slots[0, : flat.size].copy()
        for rank in range(1, self.world):
            total += slots[rank, : flat.size]
        return total.astype(vector.dtype, copy=False).reshape(vector.shape)

    def wait_for(self, array: np.ndarray, index: int, value: int) -> None:
        spins = 0
        while array[index] < value:
            spins += 1
            if spins & 1023 == 0:
                self.peers_alive()

    def share(self, rank: int) -> tuple[int, int]:
        return int(self.header[_HEADER + 2 * rank]), int(self.header[_HEADER + 2 * rank + 1])

    def fail(self, message: str) -> None:
        data = message.encode("utf-8", "replace")[: _ERROR_BYTES - 1]
        self.errors[self.rank, : len(data)] = np.frombuffer(data, np.uint8)
        self.errors[self.rank, len(data)] = 0
        self.failed[self.rank] = 1

    def error(self, rank: int) -> str:
        raw = self.errors[rank].tobytes()
        return raw[: raw.find(b"\0")].decode("utf-8", "replace")


class DataParallel:
    """Train and run `model` with every batch split over `workers` processes, one per core.

    Args:
        model: a Sequential. It stays the model: its parameters, buffers, modes and random
            generators are sent to the workers at every call, so it can be changed in
            place, trained without this object, saved or loaded in between. Replacing its
            layers needs a new DataParallel.
        workers: processes in all, this one included (2 for a 2-core machine). 1 runs
            everything in this process.

    `train_step(x, y)` adds to every parameter's `grad` what `model.backward` would add for
    the whole batch (up to rounding), and returns (loss, logits), so `optimizer.step()`
    follows as usual. `predict_logits(x, batch_size)` returns what `model.predict_logits`
    would, bit for bit. Use it as a context manager, or call `close()`, to stop the
    workers; they also stop when this process exits.

    Workers are forked when first needed, with BLAS on one thread; this process runs its
    share with BLAS on one thread too, and has its own setting back between calls. Data
    parallelism needs x86-64 Linux (`supported()`); elsewhere, or with workers=1, the
    calls run in this process alone.
    """

    def __init__(self, model, workers: int = 2) -> None:
        if not (isinstance(workers, int) and not isinstance(workers, bool) and workers >= 1):
            raise ValueError(f"DataParallel: workers must be a positive integer, found {workers!r}")
        self.model = model
        self.world = workers if supported() else 1
        self.criterion = SoftmaxCrossEntropy()
        self._pool = None

    def train_step(self, x, y) -> tuple[float, np.ndarray]:
        """Forward and backward on the batch (x, y), split over the processes; see the class."""
        from .layout import as_float

        x, y = as_float(x), np.asarray(y)
        if self.world == 1 or len(x) < 2 * self.world or y.ndim != 1:
            return self._train_here(x, y)
        starts = [rank * len(x) // self.world for rank in range(self.world + 1)]
        shares = list(zip(starts[:-1], starts[1:]))
        pool = self._ready()
        try:
            for rank in range(1, self.world):
                pool.put_input(rank, x[slice(*shares[rank])], y[slice(*shares[rank])])
            pool.post(_TRAIN, len(x), shares)
            logits, loss = _run_share(pool.group, lambda: _train_share(self.model, x[slice(*shares[0])],
                                                                       y[slice(*shares[0])], pool.group))
            pool.wait_done()
            pool.add_gradients(self._found.parameters)
            loss += sum(float(pool.group.losses[rank]) for rank in range(1, self.world))
            gathered = [logits] + [pool.get_output(rank, logits, shares[rank]) for rank in range(1, self.world)]
        except BaseException:
            self.close()
            raise
        return loss, np.concatenate(gathered)

    def predict_logits(self, x, batch_size: int = 64) -> np.ndarray:
        """The model's eval-mode logits (N, K), as `Sequential.predict_logits`, split over the processes."""
        from .layout import as_float

        x = as_float(x)
        batches = -(-len(x) // batch_size) if batch_size > 0 else 0
        if self.world == 1 or batches < self.world:
            return self.model.predict_logits(x, batch_size)
        pool = self._ready()
        per_worker = max(1, INPUT_BYTES // (x[:1].nbytes * batch_size))
        chunks = []
        try:
            for first in range(0, batches, per_worker * self.world):
                count = min(per_worker * self.world, batches - first)
                # Shares start at multiples of batch_size, so each batch is the one a single
                # process would run, and its logits are the same bit for bit. Rank 0's share
                # is never the empty one.
                bounds = [min(len(x), (first + -(-rank * count // self.world)) * batch_size)
                          for rank in range(self.world + 1)]
                shares = list(zip(bounds[:-1], bounds[1:]))
                for rank in range(1, self.world):
                    pool.put_input(rank, x[slice(*shares[rank])])
                pool.post(_PREDICT, batch_size, shares)
                logits = _run_share(pool.group, lambda: self.model.predict_logits(x[slice(*shares[0])], batch_size))
                pool.wait_done()
                chunks.append(logits)
                chunks += [pool.get_output(rank, logits, shares[rank]) for rank in range(1, self.world)]
        except BaseException:
            self.close()
            raise
        return np.concatenate(chunks)

    def predict(self, x, batch_size: int = 64) -> np.ndarray:
        return self.predict_logits(x, batch_size).argmax(axis=1).astype(np.int64)

    def _train_here(self, x, y):
        logits = self.model.forward(x)
        loss, dlogits = self.criterion.value_and_grad(logits, y)
        self.model.backward(dlogits, input_grad=False)
        return loss, logits

    def _ready(self) -> "_Pool":
        if self._pool is not None and not self._found.unchanged():
            self.close()
        if self._pool is None:
            self._found = _Model(self.model)
            self._pool = _Pool(self._found, self.world)
        self._pool.push_state(self._found)
        return self._pool

    def close(self) -> None:
        """Stop the workers (a later call starts new ones)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> "DataParallel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DataParallel(workers={self.world})"


class _Pool:
    """The forked workers of one DataParallel and the shared memory they use."""

    def __init__(self, found: _Model, world: int) -> None:
        self.memory = mmap.mmap(-1, Group.size(world, found))  # anonymous, MAP_SHARED: children see it
        self.group = Group(self.memory, world, found)
        self.group.peers_alive = self._check_workers
        self.calls = 0
        self.pids, self.wake = [], []
        parent = os.getpid()
        for rank in range(1, world):
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:  # the worker; it never returns from here
                code = 1
                try:
                    os.close(write_end)
                    for fd in self.wake:
                        os.close(fd)
                    code = _serve(found, self.group, rank, read_end, parent)
                finally:
                    os._exit(code)
            os.close(read_end)
            os.set_blocking(write_end, False)
            self.pids.append(pid)
            self.wake.append(write_end)
        self._finalizer = weakref.finalize(self, _stop, self.pids, self.wake, self.group)

    def push_state(self, found: _Model) -> None:
        group = self.group
        for view, parameter in zip(group.values, found.parameters):
            np.copyto(view, parameter.value)
        for view, buffer in zip(group.buffers, found.buffers()):
            np.copyto(view, buffer)
        group.modes[:] = [module.training for module in found.modules]
        for row, generator in zip(group.random, found.generators):
            row[:] = _pack_state(generator)
        group.header[3] = int(getattr(found.model, "fused", True))

    def put_input(self, rank: int, x: np.ndarray, y: np.ndarray | None = None) -> None:
        needed = x.nbytes + (0 if y is None else len(y) * 8)
        if needed > INPUT_BYTES or x.ndim > 7:
            raise ValueError(f"DataParallel: a share of shape {x.shape} does not fit the {INPUT_BYTES}-byte share area")
        area = self.group.inputs[rank]
        np.copyto(area[: x.nbytes].view(x.dtype).reshape(x.shape), x)
        if y is not None:
            np.copyto(area[x.nbytes : needed].view(np.int64), y)
        header = self.group.header
        header[4], header[5] = x.itemsize, x.ndim - 1
        header[6 : 6 + x.ndim - 1] = x.shape[1:]

    def post(self, kind: int, total: int, shares) -> None:
        header = self.group.header
        header[1], header[2] = kind, total
        for rank, (start, stop) in enumerate(shares):
            header[_HEADER + 2 * rank], header[_HEADER + 2 * rank + 1] = start, stop
        self.group.total, self.group.start = total, 0
        self.calls += 1
        header[0] = self.calls
        for fd in self.wake:
            try:
                os.write(fd, b"!")
            except BlockingIOError:  # the pipe is full of wake-ups the worker will see anyway
                pass

    def wait_done(self) -> None:
        for rank in range(1, self.group.world):
            self.group.wait_for(self.group.done, rank, self.calls)

    def add_gradients(self, parameters) -> None:
        for rank in range(1, self.group.world):
            for parameter, grad in zip(parameters, self.group.grads[rank]):
                parameter.grad += grad

    def get_output(self, rank: int, like: np.ndarray, share) -> np.ndarray:
        shape = (share[1] - share[0],) + like.shape[1:]
        count = int(np.prod(shape, dtype=np.int64)) * like.itemsize
        return self.group.outputs[rank, :count].view(like.dtype).reshape(shape).copy()

    def _check_workers(self) -> None:
        for rank, pid in enumerate(self.pids, start=1):
            if self.group.failed[rank]:
                raise ParallelError(f"data-parallel worker {rank} failed: {self.group.error(rank)}")
            if pid > 0 and os.waitpid(pid, os.WNOHANG)[0]:
                self.pids[rank - 1] = -1
                raise ParallelError(f"data-parallel worker {rank} (pid {pid}) exited unexpectedly")

    def close(self) -> None:
        self._finalizer()


def _stop(pids, wake, group) -> None:
    """Ask the workers to exit and reap them (killed if they do not within 2 s)."""
    group.header[1] = _QUIT
    group.header[0] += 1
    for fd in wake:
        try:
            os.write(fd, b"!")
        except OSError:
            pass
        os.close(fd)
    deadline = time.monotonic() + 2.0
    for pid in pids:
        while pid > 0:
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    break
            except ChildProcessError:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.001)


def _run_share(group: Group, compute):
    """Run this process's share as rank 0 of the group, with BLAS on one thread."""
    global _active
    with blas.limited_threads(1):
        _active = group
        try:
            return compute()
        finally:
            _active = None


def _train_share(model, x, y, group: Group):
    """Forward and backward of one share, its loss gradient scaled to the whole batch's mean."""
    logits = model.forward(x)
    loss, dlogits = SoftmaxCrossEntropy.value_and_grad(logits, y)
    model.backward(dlogits * (len(y) / group.total), input_grad=False)
    return logits, loss * len(y) / group.total


def _serve(found: _Model, group: Group, rank: int, wake: int, parent: int) -> int:
    """A worker's loop: wait for a call, load the state rank 0 sent, compute the share."""
    global _active
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is rank 0's to handle
    blas.set_threads(1)
    group.rank = rank

    def parent_alive():
        if os.getppid() != parent or group.failed[0]:
            os._exit(0)

    group.peers_alive = parent_alive
    model = found.model
    # The parameters read rank 0's values and write this worker's gradients in place.
    for parameter, value, grad in zip(found.parameters, group.values, group.grads[rank]):
        parameter.value, parameter.grad = value, grad
    seen = 0  # not read from the header: rank 0 may post its first call before this runs
    while True:
        seen = _next_call(group, seen, wake, parent_alive)
        header = group.header
        if header[1] == _QUIT:
            return 0
        try:
            for (owner, name), buffer in zip(found.buffer_owners, group.buffers):
                setattr(owner, name, buffer.copy())
            for module, mode in zip(found.modules, group.modes):
                module.training = bool(mode)
            for generator, words in zip(found.generators, group.random):
                generator.bit_generator.state = _unpack_state(words)
            if hasattr(model, "fused"):
                model.fused = bool(header[3])
            start, stop = group.share(rank)
            group.total, group.start = int(header[2]), start
            dtype = np.dtype(np.float32 if header[4] == 4 else np.float64)
            shape = (stop - start,) + tuple(int(v) for v in header[6 : 6 + int(header[5])])
            x_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            x = group.inputs[rank, :x_bytes].view(dtype).reshape(shape)
            _active = group
            if header[1] == _TRAIN:
                group.grad_areas[rank].fill(0)
                y = group.inputs[rank, x_bytes : x_bytes + (stop - start) * 8].view(np.int64)
                logits, group.losses[rank] = _train_share(model, x, y, group)
            else:  # predict; the header's total is the batch size
                logits = model.predict_logits(x, group.total)
            if logits.nbytes > INPUT_BYTES:
                raise ValueError(f"DataParallel: outputs of {logits.nbytes} bytes exceed the {INPUT_BYTES}-byte area")
            np.copyto(group.outputs[rank, : logits.nbytes].view(logits.dtype).reshape(logits.shape), logits)
            group.done[rank] = seen
        except BaseException as error:  # noqa: BLE001  (reported to rank 0, which raises it)
            group.fail(f"{type(error).__name__}: {error}")
            return 1
        finally:
            _active = None


def _next_call(group: Group, seen: int, wake: int, parent_alive) -> int:
    """Wait for rank 0 to post a call after `seen`: spin briefly, then sleep on the wake pipe."""
    header = group.header
    deadline = time.perf_counter() + SPIN_SECONDS
    while header[0] <= seen:
        if time.perf_counter() > deadline:
            ready, _, _ = select.select([wake], [], [], 1.0)
            if ready and not os.read(wake, 4096):
                os._exit(0)  # rank 0 closed its end: it has exited
            parent_alive()
    return int(header[0])


_MASK64 = (1 << 64) - 1


def _pack_state(generator) -> list[int]:
    state = generator.bit_generator.state
    inner = state["state"]
    return [inner["state"] & _MASK64, inner["state"] >> 64, inner["inc"] & _MASK64, inner["inc"] >> 64,
            state["has_uint32"], state["uinteger"]]


def _unpack_state(words) -> dict:
    words = [int(word) for word in words]
    return {"bit_generator": "PCG64",
            "state": {"state": words[0] | words[1] << 64, "inc": words[2] | words[3] << 64},
            "has_uint32": words[4], "uinteger": words[5]}
