"""The service's counters, in Prometheus's text exposition format (version 0.0.4), by hand.

Three families: requests by method, path and status; the latency of each request as a
histogram; errors by kind (the `kind` of each 4xx/5xx answer). One more shows micro-batching
at work: how many images each forward pass of the model carried.

No label holds what a client chose: a method outside HTTP's own is counted as `other`, and the
caller passes a route's path (or a fixed word), never the path a client typed; so the label set,
and /metrics with it, stays the same size however many requests arrive.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)  # seconds
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)  # images per forward pass
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})  # RFC 9110, 5789


class Histogram:
    """Cumulative buckets, a sum and a count, as Prometheus histograms are exposed."""

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def lines(self, name: str, labels: str = "") -> list[str]:
        out, running = [], 0
        for bound, count in zip((*map(_number, self.bounds), "+Inf"), self.counts):
            running += count
            out.append(f'{name}_bucket{{{labels}{"," if labels else ""}le="{bound}"}} {running}')
        braces = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_sum{braces} {_number(self.total)}")
        out.append(f"{name}_count{braces} {self.count}")
        return out


class Metrics:
    """What /metrics shows; every method may be called from any thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.errors: Counter[str] = Counter()
        self.latency = Histogram(LATENCY_BUCKETS)
        self.batch_sizes = Histogram(BATCH_BUCKETS)

    def record_request(self, method: str, path: str, status: int, seconds: float) -> None:
        """Count one request; `path` must come from a fixed set (a route's path), since it
        becomes a label. A method HTTP does not define is counted as `other`."""
        method = method if method in METHODS else "other"
        with self._lock:
            self.requests[(method, path, status)] += 1
            self.latency.observe(seconds)

    def record_error(self, kind: str) -> None:
        with self._lock:
            self.errors[kind] += 1

    def record_batch(self, size: int) -> None:
        with self._lock:
            self.batch_sizes.observe(size)

    def exposition(self) -> str:
        """The text a Prometheus server scrapes (Content-Type `text/plain; version=0.0.4`)."""
        with self._lock:
            lines = ["# HELP lenet5_requests_total HTTP requests answered, by method, path and status.",
                     "# TYPE lenet5_requests_total counter"]
            for (method, path, status), count in sorted(self.requests.items()):
                lines.append(f'lenet5_requests_total{{method="{_escape(method)}",path="{_escape(path)}",'
                             f'status="{status}"}} {count}')
            lines += ["# HELP lenet5_request_duration_seconds Time from a request's arrival to its answer.",
                      "# TYPE lenet5_request_duration_seconds histogram",
                      *self.latency.lines("lenet5_request_duration_seconds")]
            lines += ["# HELP lenet5_errors_total Requests refused or failed, by kind of error.",
                      "# TYPE lenet5_errors_total counter"]
            for kind, count in sorted(self.errors.items()):
                lines.append(f'lenet5_errors_total{{kind="{_escape(kind)}"}} {count}')
            lines += ["# HELP lenet5_batch_size Images carried by each forward pass of the model.",
                      "# TYPE lenet5_batch_size histogram",
                      *self.batch_sizes.lines("lenet5_batch_size")]
        return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return repr(float(value))


def _escape(text: str) -> str:
    """A label value as the exposition format quotes it."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
