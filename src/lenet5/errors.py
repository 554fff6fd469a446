"""The one exception type lenet5 raises for problems a user can fix.

The command line prints a `Lenet5Error` as one line and exits non-zero; any other exception
is a bug in lenet5 and keeps its traceback.
"""


class Lenet5Error(Exception):
    """A problem with the user's input, files or environment, described in one line."""


class DataError(Lenet5Error):
    """A dataset file is missing, corrupt, or cannot be fetched."""


class ChecksumError(DataError):
    """A file's SHA-256 is not the pinned one."""


class CheckpointError(Lenet5Error):
    """A model or checkpoint file is unreadable, unsafe, or does not match its metadata."""


class RunDirError(Lenet5Error):
    """A run directory that cannot be used: unwritable, already taken, or not a run."""
