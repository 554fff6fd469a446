"""Helpers for the data tests: tiny fake datasets and a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lenet5.data import registry
from lenet5.data.idx import write_idx

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def tiny_arrays(seed=0, train=20, test=10):
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.arange(test, dtype=np.uint8) % 10,
    }


@pytest.fixture
def tiny_dataset(tmp_path, monkeypatch):
    """A registered dataset 'tiny' whose pinned checksums are those of files written here.

    Returns (directory with raw files, directory with .gz files, arrays).
    """
    arrays = tiny_arrays()
    raw, gz = tmp_path / "raw", tmp_path / "gz"
    digests = {}
    for name, array in arrays.items():
        write_idx(raw / name, array)
        write_idx(gz / f"{name}.gz", array)
        digests[name] = hashlib.sha256((raw / name).read_bytes()).hexdigest()
    info = replace(registry.DATASETS["mnist"], name="tiny", sha256=digests, npm_package=None, mirrors=())
    monkeypatch.setitem(registry.DATASETS, "tiny", info)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("LENET5_DATA_DIR", raising=False)
    monkeypatch.delenv("LENET5_MIRRORS", raising=False)
    return raw, gz, arrays


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict = {}

    def do_GET(self):  # noqa: N802 (http.server's naming)
        behaviour = self.routes.get(self.path)
        if behaviour is None:
            self.send_error(404)
            return
        body, mode = behaviour
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "drop":  # announce everything, send half, hang up
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    """A loopback server; `serve(path, body, mode)` sets what a path returns. Stops by itself."""
    routes: dict = {}
    handler = type("Handler", (_Handler,), {"routes": routes})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    def serve(path: str, body: bytes, mode: str = "ok"):
        routes[path] = (body, mode)

    yield base, serve
    server.shutdown()
    server.server_close()


def gz_bytes(directory: Path, name: str) -> bytes:
    return (directory / f"{name}.gz").read_bytes()
