"""Load on `lenet5 serve`: requests per second and p50/p99 latency at concurrency 1, 8 and 32.

    python benchmarks/load.py [--run RUN_DIR] [--requests 300] [--payload png|json] [--workers 1 2]

Starts its own servers on free loopback ports, one after another, each in a subprocess:
    numpy            `lenet5 serve` as it is: the NumPy model (fast engine), micro-batching on
    numpy-unbatched  `lenet5 serve --no-batching`: each request's forward pass alone
    torch            the model's PyTorch twin (same weights) behind the same app, batching on
(the two NumPy servers once per `--workers` count, as `lenet5 serve --workers N`; the torch
server with one process) and sends each a fixed number of requests per concurrency level
(after a few unmeasured ones), so every run stops by itself. The timing of a model does not depend on its weights:
without --run, the default LeNet-5 with its initial weights is served. The client shares the
machine with the server, so on a small machine the numbers are the pair's, not the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SERVERS = ("numpy", "numpy-unbatched", "torch")
CONCURRENCY = (1, 8, 32)
WARMUP = 20
STARTUP_SECONDS = 60


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, help="a run directory (default: an untrained LeNet-5)")
    parser.add_argument("--requests", type=int, default=300, help="requests per server and concurrency (300)")
    parser.add_argument("--payload", choices=("png", "json"), default="png",
                        help="a 140×140 PNG drawing (what the page sends) or JSON 28×28 pixels")
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS))
    parser.add_argument("--workers", nargs="+", type=int, default=[1],
                        help="server processes of the NumPy servers, one measurement each (1)")
    parser.add_argument("--batch-wait-ms", type=float, default=2.0,
                        help="how long a batching server's forward pass waits for more requests (2)")
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)  # internal: be one server
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args.serve, args.run, args.port, args.batch_wait_ms / 1000)
    with tempfile.TemporaryDirectory() as scratch:
        run_dir = args.run or untrained_run(Path(scratch))
        body, content_type = payload(args.payload)
        results = {}
        for kind in args.servers:
            for workers in args.workers if kind != "torch" else [1]:
                label = kind if workers == 1 else f"{kind} x{workers}"
                results[label] = measure(kind, run_dir, body, content_type, args.requests, args.batch_wait_ms,
                                         workers)
    report(results, args)
    return 0


def untrained_run(directory: Path) -> Path:
    from lenet5.files.weights import save_model
    from lenet5.run.preprocessing import preprocessing_metadata
    from lenet5.zoo.models import build_model

    model = build_model("lenet5", seed=0)
    model.eval()
    save_model(directory / "model.npz", model, {"preprocessing": preprocessing_metadata("lenet5", 0.1307, 0.3081)})
    return directory


def payload(kind: str) -> tuple[bytes, str]:
    pixels = np.zeros((28, 28), np.uint8)
    pixels[5:23, 12:16] = 255  # a "1"
    if kind == "json":
        return json.dumps({"pixels": pixels.tolist()}).encode(), "application/json"
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(255 - pixels).resize((140, 140)).save(buffer, "PNG")
    return buffer.getvalue(), "image/png"


def torch_forward(classifier):
    """(N, 28, 28) uint8 -> (N, 10) probabilities through the model's PyTorch twin (same
    weights, eval mode), after the same preprocessing as the NumPy service."""
    import torch

    from lenet5.run.preprocessing import preprocess_like
    from lenet5.torch_twin import torch_twin

    twin = torch_twin(classifier.model).eval()

    def forward(pixels: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = twin(torch.from_numpy(preprocess_like(pixels, classifier.metadata)))
            return torch.softmax(logits, dim=1).double().numpy()

    return forward


def serve(kind: str, run_dir: Path, port: int, max_wait: float) -> int:
    import uvicorn

    from lenet5.run.classifier import load
    from lenet5.serve.app import create_app

    classifier = load(run_dir)
    forward = torch_forward(classifier) if kind == "torch" else None
    app = create_app(classifier, batching=kind != "numpy-unbatched", max_wait=max_wait, forward=forward)
    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning")
    return 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def measure(kind: str, run_dir: Path, body: bytes, content_type: str, requests: int, wait_ms: float,
            workers: int = 1) -> dict:
    port = free_port()
    if kind == "torch":
        command = [sys.executable, __file__, "--serve", kind, "--run", str(run_dir), "--port", str(port)]
    else:
        command = [sys.executable, "-m", "lenet5", "serve", str(run_dir), "--port", str(port), "--workers",
                   str(workers), *(["--no-batching"] if kind == "numpy-unbatched" else [])]
    # A file, not a pipe: the server logs a line per request, and a pipe nobody reads would stall it.
    with tempfile.TemporaryFile(mode="w+") as log:
        server = subprocess.Popen([*command, "--batch-wait-ms", str(wait_ms)], stdout=subprocess.DEVNULL,
                                  stderr=log, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_up(server, url, log)
            return {str(level): asyncio.run(load(url, body, content_type, level, requests)) for level in CONCURRENCY}
        finally:
            server.terminate()
            server.wait(timeout=STARTUP_SECONDS)


def wait_until_up(server: subprocess.Popen, url: str, log) -> None:
    import httpx

    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            log.seek(0)
            raise SystemExit(f"load.py: the server exited: {log.read().strip()}")
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"load.py: no answer from {url} within {STARTUP_SECONDS} s")


async def load(url: str, body: bytes, content_type: str, concurrency: int, requests: int) -> dict:
    """`requests` POST /predict, `concurrency` at a time; throughput and latency percentiles."""
    import httpx

    latencies: list[float] = []
    failures = 0
    headers = {"Content-Type": content_type}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=STARTUP_SECONDS) as client:
        for _ in range(WARMUP):
            await client.post("/predict", content=body, headers=headers)
        remaining = iter(range(requests))

        async def worker():
            nonlocal failures
            for _ in remaining:  # one shared iterator: the workers take the requests between them
                start = time.perf_counter()
                response = await client.post("/predict", content=body, headers=headers)
                latencies.append(time.perf_counter() - start)
                failures += response.status_code != 200

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    milliseconds = np.array(latencies) * 1000
    return {"requests": requests, "failures": failures, "seconds": elapsed, "rps": requests / elapsed,
            "p50_ms": float(np.percentile(milliseconds, 50)), "p99_ms": float(np.percentile(milliseconds, 99))}


def report(results: dict, args) -> None:
    print(f"POST /predict, {args.payload} body, {args.requests} requests per row, loopback, "
          f"{os.cpu_count()} cores shared by client and server, batch wait {args.batch_wait_ms:g} ms")
    print(f"{'server':<16} {'concurrency':>11} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'failed':>6}")
    for kind, levels in results.items():
        for level, row in levels.items():
            print(f"{kind:<16} {level:>11} {row['rps']:8.0f} {row['p50_ms']:8.1f} {row['p99_ms']:8.1f} "
                  f"{row['failures']:>6}")
    if "numpy" in results:
        for other in ("numpy-unbatched", "torch"):
            if other in results:
                ratios = "  ".join(f"c={level}: {results['numpy'][level]['rps'] / results[other][level]['rps']:.2f}"
                                   for level in results["numpy"])
                print(f"throughput numpy / {other}: {ratios}")
    for label in results:
        if label.startswith("numpy x") and "numpy" in results:
            ratios = "  ".join(f"c={level}: {results[label][level]['rps'] / results['numpy'][level]['rps']:.2f}"
                               for level in results[label])
            print(f"throughput {label} / numpy: {ratios}")
    print(json.dumps(results))


if __name__ == "__main__":
    sys.exit(main())
