"""uvicorn as `lenet5 serve` runs it: deadlines, a concurrency limit, worker processes, JSON logs.

uvicorn provides most of it: `timeout_keep_alive` closes a connection left idle after an
answer; `limit_concurrency` answers 503 while that many connections and requests are open;
`workers` starts that many processes on one listening socket; h11 refuses a request head over
16 KiB; `timeout_graceful_shutdown` bounds how long Ctrl-C waits for requests in flight. It
has no deadline for a request to arrive, so two are added:

    the head   `HeadDeadline` (below): the request line and headers must be whole within the
               deadline of the connection opening, or of the previous answer; else the
               connection is closed. uvicorn's keep-alive timer never runs before a first
               request, and the first byte of the next one cancels it, so a client sending
               one header byte every few seconds held its connection forever.
    the body   `app.Gate`: the body must be whole within the deadline of the head; else 408.

The app is built in each worker from the settings the command leaves in the environment
(`SETTINGS`), since uvicorn's worker processes import it by name.
"""

from __future__ import annotations

import functools
import json
import logging
import os

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..run.classifier import load
from .app import create_app
from .logs import LOG_CONFIG

SETTINGS = "LENET5_SERVE_SETTINGS"

log = logging.getLogger("lenet5.serve")


def run(run_dir, *, host: str, port: int, workers: int, timeout_request: float, timeout_keep_alive: float,
        limit_concurrency: int, batching: bool, max_batch: int, max_wait: float) -> None:
    """Serve the run in `run_dir` until interrupted (see the module's docstring; the command's
    options say what each argument does)."""
    os.environ[SETTINGS] = json.dumps({"run_dir": str(run_dir), "batching": batching, "max_batch": max_batch,
                                       "max_wait": max_wait, "request_timeout": timeout_request})
    # backlog: out of file descriptors, asyncio retries a failed accept `backlog` times on every
    # wake-up, logging each; uvicorn's 2048 kept a core busy (5.5 s of CPU in 8 s), 128 does not.
    uvicorn.run(f"{__name__}:app_from_settings", factory=True, host=host, port=port, workers=workers,
                http=functools.partial(HeadDeadline, head_timeout=timeout_request),
                timeout_keep_alive=timeout_keep_alive, limit_concurrency=limit_concurrency, backlog=128,
                timeout_graceful_shutdown=timeout_request, log_config=LOG_CONFIG, log_level="warning",
                access_log=False)


def app_from_settings():
    """The app of one worker process, from the settings `run` left in the environment."""
    settings = json.loads(os.environ[SETTINGS])
    logging.captureWarnings(True)  # a library's warning is a JSON line too, not text on stderr
    return create_app(load(settings.pop("run_dir")), **settings)


class HeadDeadline(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head is not whole within
    `head_timeout` seconds of the connection opening or of the previous answer."""

    def __init__(self, *args, head_timeout: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.head_timeout = head_timeout
        self._head_timer = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._expect_head()

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a head arrived whole: the body is app.Gate's to time
            self._cancel()

    def on_response_complete(self) -> None:
        self._expect_head()  # first: the parent may start a pipelined request, which cancels it
        super().on_response_complete()

    def connection_lost(self, exc) -> None:
        self._cancel()
        super().connection_lost(exc)

    def _expect_head(self) -> None:
        self._cancel()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_late)

    def _cancel(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            # info, not warning: a browser's preconnected socket, never used, ends here too
            log.info("closed a connection whose request head was not whole within %g s", self.head_timeout)
            self.transport.close()
