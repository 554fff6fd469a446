"""Helpers for the data tests: tiny IDX files, a tiny registered dataset, a loopback HTTP server."""

from __future__ import annotations

import hashlib
import http.server
import struct
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lenet5.data import registry
from lenet5.data.idx import write_idx

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
TRAIN, TEST = 20, 10


def header(magic: int, *dims: int) -> bytes:
    """An IDX header: the 4-byte magic, then one big-endian uint32 per dimension."""
    return struct.pack(f">I{len(dims)}I", magic, *dims)


def tiny_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (TRAIN, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, TRAIN, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (TEST, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.arange(TEST, dtype=np.uint8) % 10,
    }


class Tiny:
    """A registered dataset "tiny": `raw` and `gz` hold its files, `arrays` their content."""

    def __init__(self, raw: Path, gz: Path, arrays: dict[str, np.ndarray]) -> None:
        self.raw, self.gz, self.arrays = raw, gz, arrays

    def gz_bytes(self, name: str) -> bytes:
        return (self.gz / f"{name}.gz").read_bytes()

    def raw_bytes(self, name: str) -> bytes:
        return (self.raw / name).read_bytes()


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """A private cache and no data directory, mirror list or npm from the environment."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("LENET5_DATA_DIR", raising=False)
    monkeypatch.delenv("LENET5_MIRRORS", raising=False)
    no_npm = tmp_path / "bin-without-npm"
    no_npm.mkdir()
    monkeypatch.setenv("PATH", str(no_npm))
    return tmp_path / "cache"


@pytest.fixture
def tiny(tmp_path, monkeypatch, isolated) -> Tiny:
    """A dataset "tiny" in the registry, whose pinned checksums and counts are those of files
    written here; it has no npm package, system directory or mirror unless a test sets one."""
    arrays = tiny_arrays()
    raw, gz = tmp_path / "raw", tmp_path / "gz"
    for name, array in arrays.items():
        write_idx(raw / name, array)
        write_idx(gz / f"{name}.gz", array)
    digests = {name: hashlib.sha256((raw / name).read_bytes()).hexdigest() for name in FILES}
    info = replace(registry.DATASETS["mnist"], name="tiny", sha256=digests, train_count=TRAIN, test_count=TEST,
                   npm_package=None, system_dirs=(), mirrors=())
    monkeypatch.setitem(registry.DATASETS, "tiny", info)
    return Tiny(raw, gz, arrays)


def set_tiny(monkeypatch, **changes) -> None:
    """Change fields of the registered "tiny" dataset for one test."""
    monkeypatch.setitem(registry.DATASETS, "tiny", replace(registry.DATASETS["tiny"], **changes))


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict = {}
    requests: list = []
    timeout = 5  # seconds: a stuck client cannot hold a server thread for long

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.requests.append(self.path)
        behaviour = self.routes.get(self.path)
        if behaviour is None:
            self.send_error(404)
            return
        body, mode = behaviour
        self.send_response(200)
        if not mode.endswith("unannounced"):
            self.send_header("Content-Length", str(len(body) * 1000 if mode == "oversized" else len(body)))
        self.end_headers()
        if mode.startswith("trickle"):  # one byte every 50 ms, until the client hangs up
            try:
                for offset in range(len(body)):
                    self.wfile.write(body[offset:offset + 1])
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                pass
            return
        if mode == "drop":  # announce everything, send half, hang up
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server:
    def __init__(self, base: str, routes: dict, requests: list) -> None:
        self.base, self.routes, self.requests = base, routes, requests

    def serve(self, path: str, body: bytes, mode: str = "ok") -> None:
        """What GET `path` returns: mode "ok", "drop" (half, then hang up), "oversized" (announces
        1000 times the length), "trickle" (one byte every 50 ms); "unannounced" and
        "trickle-unannounced" are "ok" and "trickle" without a Content-Length."""
        self.routes[path] = (body, mode)

    def url(self, prefix: str) -> str:
        return f"{self.base}/{prefix.strip('/')}/"


@pytest.fixture
def http_server():
    """An HTTP server on 127.0.0.1, ephemeral port, stopped when the test ends; unknown paths 404."""
    routes, requests = {}, []
    handler = type("Handler", (_Handler,), {"routes": routes, "requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{server.server_address[1]}", routes, requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def serve_dataset(server: Server, tiny: Tiny, prefix: str, mode: str = "ok", transform=None) -> str:
    """Serve the tiny dataset's .gz files under /prefix/; return that base URL."""
    for name in FILES:
        body = tiny.gz_bytes(name)
        server.serve(f"/{prefix}/{name}.gz", transform(body) if transform else body, mode)
    return server.url(prefix)


def cache_entries(cache_root: Path, name: str = "tiny") -> list[str]:
    directory = cache_root / "lenet5" / name
    return sorted(entry.name for entry in directory.iterdir()) if directory.exists() else []
