"""`lenet5 serve RUN_DIR [--host 127.0.0.1] [--port 8000]`: the HTTP service and its page."""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from ..arguments import non_negative_float, positive_int
from ..errors import Lenet5Error

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
    parser.set_defaults(handler=serve_command)


def serve_command(args) -> int:
    try:
        import uvicorn

        from .app import create_app
        from .logs import LOG_CONFIG
    except ModuleNotFoundError as error:
        if str(error.name).split(".")[0] not in SERVE_MODULES:
            raise
        raise Lenet5Error(f"lenet5 serve needs the serve extra ({error.name} is missing): "
                          f"pip install 'lenet5[serve]'") from None
    from ..classifier import load

    check_address(args.host, args.port)
    classifier = load(args.run_dir)
    app = create_app(classifier, batching=not args.no_batching, max_batch=args.max_batch,
                     max_wait=args.batch_wait_ms / 1000)
    print(f"serving {classifier.name} from {args.run_dir} on http://{args.host}:{args.port}/ "
          f"(API schema: /docs; stop with Ctrl-C)", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_level="warning", log_config=LOG_CONFIG)
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
