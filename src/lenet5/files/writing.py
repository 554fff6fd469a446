"""Atomic file writes: a crash leaves either the old file or the new one, never half of one.

A write goes to a hidden temporary file beside its target, `.NAME.<random>.tmp`, renamed over
the target when complete. A process killed mid-write (SIGKILL, power loss) leaves that file
behind; `remove_stale_temporaries` clears such leftovers once nothing can be writing them.
A whole directory (a report) is built the same way, by `atomic_directory`, which also clears
the hidden directories of builders that were killed.

Where a user names the destination (`export -o`, `train --out`), `check_destination` decides
first whether it may be written at all: a rename puts a regular file in place of whatever held
the name, a device node or a FIFO included.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path
from typing import IO, Iterator

from ..errors import Lenet5Error


class DestinationError(Lenet5Error):
    """A path named to be written that lenet5 will not write: what is there, in one line."""


# What a failed write means to a user, by errno; anything else keeps the system's own words.
_WRITE_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EFBIG: "file too large (over the file-size limit)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOTDIR: "a part of the path is not a directory",
    errno.EISDIR: "a directory is in the way",
}


def os_reason(error: OSError) -> str:
    """Why a file operation failed, in words ("no space left on the device"), never a traceback."""
    return _WRITE_REASONS.get(error.errno) or error.strerror or str(error)


def write_failure(path: str | os.PathLike, error: OSError) -> str:
    """"cannot write PATH: why", for an OSError from `atomic_write(PATH)`, naming what failed
    when it was not PATH itself: a parent folder that could not be made (a file is in the way),
    or the temporary file beside PATH (a folder that takes no new files, as /proc, says "no
    such file" there, which of PATH would be untrue)."""
    failed = os.fspath(error.filename) if error.filename is not None else None
    if failed is None or failed == os.fspath(path):
        return f"cannot write {path}: {os_reason(error)}"
    if isinstance(error, FileExistsError):  # from making the parent folders
        return f"cannot write {path}: {failed} is a file, not a folder"
    return f"cannot write {path}: {os_reason(error)} (creating a file in {Path(path).parent})"


def check_destination(path: str | os.PathLike, *, what: str, folder: bool = False, overwrite: bool = False,
                      into: bool = False) -> Path:
    """`path` as a Path if `what` may be written there, else a one-line DestinationError.

    A file goes only to a new path or over a regular file, a folder only to a new path or a
    directory; anything else is refused before anything is written:
    - for a file, a name ending in "/": it names a directory;
    - a symbolic link, unless `into` (a folder that is written into, not replaced, may be a
      link to a directory): a rename replaces the link itself, not what it points to;
    - a device node, FIFO or socket: a rename would replace it (run as root, even /dev/null);
    - a directory where a file goes, anything but a directory where a folder goes;
    - an existing file, unless `overwrite` (the message names --overwrite). Whether an
      existing folder may be replaced is its caller's rule.
    """
    text = os.fspath(path)
    path = Path(text)
    allowed = f"lenet5 writes {what} only to a new path or {'a directory' if folder else 'a regular file'}"
    if not folder and text.endswith(tuple(filter(None, (os.sep, os.altsep)))):
        raise DestinationError(f"{text}: ends with a slash, which names a directory, not {what}")
    try:
        status = os.lstat(path)
    except OSError:
        # Nothing there, or no way to look (a file where a parent folder should be, a folder
        # that may not be searched): the write itself then fails, and its caller says why.
        return path
    link = stat.S_ISLNK(status.st_mode)
    if link:
        if not (folder and into):
            raise DestinationError(f"{path}: is a symbolic link; {allowed} (a rename would replace the link, "
                                   "not what it points to)")
        try:
            status = os.stat(path)
        except OSError:
            raise DestinationError(f"{path}: is a symbolic link to nothing, not {what}; move it away or "
                                   "choose another path") from None
    found = ("a symbolic link to " if link else "") + _file_kind(status.st_mode)
    if folder:
        if not stat.S_ISDIR(status.st_mode):
            raise DestinationError(f"{path}: is {found}, not {what}; move it away or choose another path")
        return path
    if found == "a directory":
        raise DestinationError(f"{path}: is a directory, not {what}")
    if found != "a regular file":
        raise DestinationError(f"{path}: is {found}; {allowed}")
    if not overwrite:
        raise DestinationError(f"{path}: already exists; use --overwrite to replace it")
    return path


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside `path`; on success fsync it and rename it over `path`.

    The temporary file lives in the same directory so the rename is atomic on POSIX. On any
    exception the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path.name), suffix=TEMPORARY_SUFFIX)
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(path.parent)


TEMPORARY_SUFFIX = ".tmp"


def _temporary_prefix(name: str) -> str:
    return f".{name}."


def remove_stale_temporaries(directory: str | os.PathLike, names) -> list[Path]:
    """Delete the temporary files that atomic writes of `names` left in `directory`; returns them.

    Only call it while no live process can be writing there (the caller holds the directory's
    lock): a file being written looks exactly like one whose writer was killed. Only names of
    the form `atomic_write` makes are touched, `.NAME.<random>.tmp` with NAME one of `names`.
    """
    directory = Path(directory)
    alternatives = "|".join(re.escape(_temporary_prefix(name)) for name in names)
    pattern = re.compile(rf"(?:{alternatives})[a-z0-9_]+{re.escape(TEMPORARY_SUFFIX)}")
    removed = []
    for entry in directory.iterdir():
        if pattern.fullmatch(entry.name) and entry.is_file() and not entry.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed.append(entry)
    return removed


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden directory beside `path` to fill; on success it becomes `path`.

    An old `path` is replaced only once the new one is complete, so a failure (or a kill) never
    leaves a half-built directory under the real name: on an exception the partial one is
    removed and the old `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_directories(path)
    # The builder's pid in the name tells a later builder whether it was abandoned.
    prefix = f"{_temporary_prefix(path.name)}{os.getpid()}."
    building = Path(tempfile.mkdtemp(dir=path.parent, prefix=prefix, suffix=".building"))
    try:
        os.chmod(building, 0o777 & ~_umask())  # mkdtemp's 0700 would hide the result from others
        yield building
        _replace_directory(building, path)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    _fsync_directory(path.parent)


def remove_abandoned_directories(path: str | os.PathLike) -> list[Path]:
    """Delete the hidden directories that `atomic_directory(path)` left when its process was
    killed (`.NAME.<pid>.<random>.building` or `.old`, whose pid no longer runs); returns them."""
    path = Path(path)
    pattern = re.compile(rf"{re.escape(_temporary_prefix(path.name))}(\d+)\.[a-z0-9_]+\.(?:building|old)")
    removed = []
    for entry in path.parent.iterdir():
        match = pattern.fullmatch(entry.name)
        if match and entry.is_dir() and not entry.is_symlink() and not _running(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _running(pid: int) -> bool:
    """Whether process `pid` exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # none, or a number no pid can be
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _replace_directory(new: Path, target: Path) -> None:
    """Rename `new` to `target`, moving an old `target` aside first and deleting it last.

    Two renames, not one: POSIX cannot rename a directory over a non-empty one. Between them
    the old directory is kept under a hidden name, and put back if the second rename fails.
    """
    retired = None
    if target.exists():
        prefix = f"{_temporary_prefix(target.name)}{os.getpid()}."
        retired = Path(tempfile.mkdtemp(dir=target.parent, prefix=prefix, suffix=".old"))
        os.rmdir(retired)  # only its unused name is wanted
        os.rename(target, retired)
    try:
        os.rename(new, target)
    except BaseException:
        if retired is not None:
            os.rename(retired, target)
        raise
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_write(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w") as handle:
        handle.write(text)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; some filesystems refuse O_RDONLY on directories.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
