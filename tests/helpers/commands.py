"""Running lenet5 as a user does, for the tests of every room: a command in a subprocess,
its one-line error, and `lenet5 serve` on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import httpx


def lenet5(*args, check=False, env=None, **kwargs):
    result = subprocess.run([sys.executable, "-m", "lenet5", *map(str, args)], capture_output=True, text=True,
                            env={**os.environ, **(env or {})}, timeout=600, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"lenet5 {' '.join(map(str, args))} failed:\n{result.stderr}")
    return result


def assert_one_line_error(result, *fragments, code=1):
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


STARTUP_SECONDS = 60  # only a guard against a server that never comes up; nothing is timed


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """`lenet5 serve RUN_DIR --port P ...` in a subprocess, stopped on exit; its stderr, kept in
    a file (a pipe nobody reads would stall a server that logs more than the pipe holds), is
    `stderr` afterwards. `preexec_fn` runs in the child before it starts (e.g. a resource limit)."""

    def __init__(self, run_dir: Path, *options: str, preexec_fn=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lenet5", "serve", str(run_dir), "--port", str(self.port), *options],
            stdout=subprocess.DEVNULL, stderr=self.log, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=preexec_fn)

    def __enter__(self):
        with httpx.Client(base_url=self.url) as client:
            for _ in range(STARTUP_SECONDS * 10):
                if self.process.poll() is not None:
                    raise AssertionError(f"lenet5 serve exited: {self.log_so_far()}")
                try:
                    if client.get("/healthz").status_code == 200:
                        return self
                except httpx.TransportError:
                    threading.Event().wait(0.1)
        raise AssertionError("lenet5 serve did not answer /healthz")

    def log_so_far(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def __exit__(self, *exc):
        self.process.terminate()
        try:
            self.process.wait(timeout=STARTUP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STARTUP_SECONDS)
        self.stderr = self.log_so_far()
        self.log.close()
