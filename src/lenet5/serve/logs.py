"""The service's log: every line on stderr is one JSON object, never a traceback.

    a request      {"method", "path", "status", "ms", "batch"}: one line per request (app.Gate)
    anything else  {"level", "logger", "message"} from uvicorn, asyncio, python-multipart...;
                   an exception adds "error" (its type and message) and "at" (where it was
                   raised), each one line

`LOG_CONFIG` is a `logging.config.dictConfig` dict that `lenet5 serve` hands to uvicorn, which
applies it in every worker process. A message that repeats is written once per
`REPEAT_WINDOW` seconds, carrying the count left out since (`"repeated": N`): when file
descriptors run out, asyncio logs "socket.accept() out of system resource" for every
connection waiting to be accepted, thousands of times a second, and uvicorn's log of that
once grew by 160 MB in 25 s. Request lines are never left out.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback

from ..text import one_line

REPEAT_WINDOW = 10.0  # seconds
MAX_KINDS = 1000  # messages remembered for the repeat window; older ones are forgotten first

LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "lenet5.serve.logs.JsonLines"}},
    "filters": {"repeats": {"()": "lenet5.serve.logs.RepeatLimiter"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                            "formatter": "json", "filters": ["repeats"]}},
    "loggers": {"lenet5.serve": {"level": "INFO"}},
    # Every other library's records (uvicorn's, asyncio's, python-multipart's) reach the root.
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}


def log_request(logger: logging.Logger, fields: dict) -> None:
    """One request's line: `fields` as JSON, written as they are and never left out."""
    logger.info(json.dumps(fields), extra={"request": True})


class JsonLines(logging.Formatter):
    """A record as one line of JSON (see the module's docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "request", False):
            return record.getMessage()
        fields = {"level": record.levelname.lower(), "logger": record.name, "message": one_line(record.getMessage())}
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            fields["error"] = one_line(f"{type(error).__name__}: {error}")
            frames = traceback.extract_tb(error.__traceback__)
            if frames:
                fields["at"] = f"{frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}"
        if getattr(record, "repeated", 0):
            fields["repeated"] = record.repeated
        return json.dumps(fields)


class RepeatLimiter(logging.Filter):
    """Lets a message (its logger and first line) through once per `window` seconds; the one
    let through after a pause carries `repeated`, the count left out since the one before.
    Request lines always pass."""

    def __init__(self, window: float = REPEAT_WINDOW, clock=time.monotonic):
        super().__init__()
        self.window, self.clock = window, clock
        self._last: dict[tuple[str, str], list] = {}  # message -> [time written, left out since]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request", False):
            return True
        key = (record.name, record.getMessage().split("\n", 1)[0][:200])
        now = self.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last[0] < self.window:
                last[1] += 1
                return False
            record.repeated = last[1] if last is not None else 0
            self._last.pop(key, None)
            self._last[key] = [now, 0]  # at the end: the dict stays ordered by time written
            while len(self._last) > MAX_KINDS:
                del self._last[next(iter(self._last))]
        return True
