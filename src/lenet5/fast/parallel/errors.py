"""The error a data-parallel call raises when a worker cannot finish its share."""

from ...errors import Lenet5Error


class ParallelError(Lenet5Error, RuntimeError):
    """A worker raised, died or stopped answering; the message names it, its pid and why.

    The workers are stopped when it is raised; the next call starts new ones. A Lenet5Error,
    so the command line reports it in one line.
    """
