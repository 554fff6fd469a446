"""`lenet5 serve` as a user runs it: a real uvicorn server on a free loopback port."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from ..helpers.commands import STARTUP_SECONDS, Server, free_port
from ..serve.conftest import digit_pixels


def test_serve_answers_logs_json_lines_and_batches_concurrent_requests(untrained_run, classifier):
    pixels = digit_pixels(3)
    # A long wait makes batching certain here: 16 requests sent at once share forward passes
    with Server(untrained_run, "--batch-wait-ms", "300") as server:
        answers = [None] * 16
        barrier = threading.Barrier(16)

        def post(index):
            with httpx.Client(base_url=server.url, timeout=STARTUP_SECONDS) as client:
                barrier.wait()
                answers[index] = client.post("/predict", json={"pixels": pixels.tolist()})

        threads = [threading.Thread(target=post, args=(i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        metrics = httpx.get(f"{server.url}/metrics").text
    truth = classifier.predict(pixels).label
    assert all(a.status_code == 200 and a.json()["label"] == truth for a in answers)
    batches = next(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("lenet5_batch_size_count"))
    assert batches < 16  # fewer forward passes than requests
    lines = [json.loads(line) for line in server.stderr.splitlines() if line.startswith("{")]
    predicts = [line for line in lines if line.get("path") == "/predict"]
    assert len(predicts) == 16 and all(line["status"] == 200 and line["batch"] == 1 for line in predicts)
    assert f"on http://127.0.0.1:{server.port}/" in server.stderr


def run_serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lenet5", "serve", *args], capture_output=True, text=True,
                          timeout=STARTUP_SECONDS)


def test_a_missing_run_is_one_line(tmp_path):
    result = run_serve(str(tmp_path / "missing"), "--port", str(free_port()))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"lenet5: error: {tmp_path / 'missing'}: no such run directory"]


def test_a_port_in_use_is_one_line(untrained_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_serve(str(untrained_run), "--port", str(port))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"lenet5: error: cannot listen on 127.0.0.1:{port}:")


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_a_bad_port_is_refused_when_parsed(untrained_run, port):
    result = run_serve(str(untrained_run), "--port", port)
    assert result.returncode == 2 and "expected a port number in 1..65535" in result.stderr


def test_without_the_serve_extra_the_command_says_what_to_install(untrained_run):
    # FastAPI made unimportable, as on an install without `lenet5[serve]`
    code = ("import sys; sys.modules['fastapi'] = None; from lenet5.cli.main import main; "
            f"sys.exit(main(['serve', {str(untrained_run)!r}, '--port', '{free_port()}']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=STARTUP_SECONDS)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "lenet5: error: lenet5 serve needs the serve extra (fastapi is missing): pip install 'lenet5[serve]'"]


def worker_processes(pid: int) -> list[int]:
    """The uvicorn workers `pid` started: its children run by multiprocessing's spawn_main."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads the process tree from /proc")
def test_workers_are_uvicorn_processes_that_each_serve(untrained_run, classifier):
    pixels = digit_pixels(5)
    with Server(untrained_run, "--workers", "2") as server:
        workers = worker_processes(server.process.pid)
        with httpx.Client(base_url=server.url, timeout=STARTUP_SECONDS) as client:
            answers = [client.post("/predict", json={"pixels": pixels.tolist()}, headers={"Connection": "close"})
                       for _ in range(8)]
    assert len(workers) == 2
    assert all(answer.status_code == 200 and answer.json()["label"] == classifier.predict(pixels).label
               for answer in answers)
    assert "with 2 workers" in server.stderr.splitlines()[0] and "Traceback" not in server.stderr
