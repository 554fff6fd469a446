"""`lenet5 serve RUN_DIR [--host 127.0.0.1] [--port 8000] [--workers N]`: the HTTP service and its page."""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from ..errors import Lenet5Error
from .arguments import AUTO_WORKERS_MAX, non_negative_float, positive_float, positive_int, worker_count

SERVE_MODULES = ("fastapi", "starlette", "uvicorn", "multipart", "python_multipart", "PIL")


def port_number(text: str) -> int:
    if not (text.isdigit() and 1 <= int(text) <= 65535):
        raise argparse.ArgumentTypeError(f"expected a port number in 1..65535, found {text!r}")
    return int(text)


def register(subparsers) -> None:
    parser = subparsers.add_parser("serve", help="serve a trained run over HTTP, with a draw-a-digit page")
    parser.add_argument("run_dir", type=Path, help="a run directory written by `lenet5 train`")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (127.0.0.1: this machine only; 0.0.0.0 opens it to the network)")
    parser.add_argument("--port", type=port_number, default=8000, help="TCP port (8000)")
    parser.add_argument("--max-batch", type=positive_int, default=64,
                        help="most images one forward pass carries when requests are gathered (64)")
    parser.add_argument("--batch-wait-ms", type=non_negative_float, default=2.0,
                        help="milliseconds a forward pass waits for more requests to join it (2)")
    parser.add_argument("--no-batching", action="store_true", help="run each request's forward pass alone")
    parser.add_argument("--workers", type=worker_count, default=1,
                        help="server processes, each with its own copy of the model ('auto': the usable cores, "
                             f"at most {AUTO_WORKERS_MAX}; 1)")
    parser.add_argument("--timeout-request", type=positive_float, default=30.0,
                        help="seconds a request's head has to arrive whole (from the connection opening or the "
                             "previous answer: else the connection is closed), and its body after it (else 408) (30)")
    parser.add_argument("--timeout-keep-alive", type=positive_float, default=5.0,
                        help="seconds an idle connection is kept open after an answer (5)")
    parser.add_argument("--limit-concurrency", type=positive_int, default=100,
                        help="open connections and requests (per worker) beyond which a request is answered 503 (100)")
    parser.set_defaults(handler=serve_command)


def serve_command(args) -> int:
    try:
        from ..serve.server import run
    except ModuleNotFoundError as error:
        if str(error.name).split(".")[0] not in SERVE_MODULES:
            raise
        raise Lenet5Error(f"lenet5 serve needs the serve extra ({error.name} is missing): "
                          f"pip install 'lenet5[serve]'") from None
    from ..run.classifier import load

    check_address(args.host, args.port)
    classifier = load(args.run_dir)  # here, so that a bad run is one line before any worker starts
    workers = f" with {args.workers} workers" if args.workers > 1 else ""
    print(f"serving {classifier.name} from {args.run_dir} on http://{args.host}:{args.port}/{workers} "
          f"(API schema: /docs; stop with Ctrl-C)", file=sys.stderr, flush=True)
    run(args.run_dir, host=args.host, port=args.port, workers=args.workers, timeout_request=args.timeout_request,
        timeout_keep_alive=args.timeout_keep_alive, limit_concurrency=args.limit_concurrency,
        batching=not args.no_batching, max_batch=args.max_batch, max_wait=args.batch_wait_ms / 1000)
    return 0


def check_address(host: str, port: int) -> None:
    """Refuse, in one line, a port that is taken or an address that is not this machine's
    (uvicorn would log a traceback-like message and exit)."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except (OSError, OverflowError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise Lenet5Error(f"cannot listen on {host}:{port}: {reason}") from None
