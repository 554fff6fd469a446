"""Data parallelism over processes: every batch is split, each process computes a share on its own core.

Why processes: a training step is hundreds of short NumPy calls, between which Python holds
the GIL, so two threads run no faster than one, and BLAS's own second thread helps little
with LeNet's small products. A process per core, each with BLAS on one thread, does use
the second core (benchmarks/processes.py measures it).

How a training step runs on W processes. Rank 0 is the caller's process and owns the model
the optimiser updates; ranks 1 … W − 1 are spawned workers, each with a copy of the model.
1. forward(x): rank 0 copies into shared memory its parameters, buffers and train/eval
   modes, each worker's rows of x, and, in training, every Dropout layer's keep mask for
   the whole batch, drawn from the model's generators exactly as one process would. It
   posts the call (with the batch's training distortion, four numbers: each rank distorts
   its own rows, so the distortions are split as the rows are), and every rank runs
   `FastModel.forward` on its rows. BatchNorm adds its
   per-channel sums over the ranks through `all_sum`, so its batch statistics, and the
   running statistics it updates, are the whole batch's. Rank 0 gathers the logits.
2. The caller computes the loss and its gradient on the gathered logits (no loss here).
3. backward(dlogits): each rank backpropagates its rows (BatchNorm's two backward sums
   again cross the ranks); each worker's parameter gradients land in its own shared area,
   and rank 0 adds them, in rank order, to the model's. The optimiser then steps as usual.
`all_sum` adds the ranks' vectors in rank order, so every rank gets the same bits.

How the processes signal: semaphores (multiprocessing's, portable to any OS and CPU),
never a flag in shared memory read in a loop, whose writes a CPU may reorder. A step makes
about a dozen exchanges, and waking a blocked process costs tens of microseconds, so a
waiter polls `acquire(False)` for up to 2 ms before it blocks (waiting.py).
Every wait is bounded: rank 0 checks the workers' exit codes between slices of its waits
and gives up after `timeout` seconds, naming the worker; a worker checks that rank 0 lives.

Files, one concern each:
    data_parallel.py  DataParallel, the public class: shares, gathering, fallbacks
    pool.py           rank 0's end: starting, timing and stopping the workers
    worker.py         a worker's loop
    transport.py      the shared block and semaphores of a group; all_sum
    memory.py         named arrays in shared memory
    waiting.py        poll, then block in bounded slices
    calls.py          the record describing a call
    state.py          the model's parameters, buffers and modes, sent at each call
    masks.py          Dropout masks, drawn once and shared
    errors.py         ParallelError
"""

from .data_parallel import DataParallel
from .errors import ParallelError

__all__ = ["DataParallel", "ParallelError"]
