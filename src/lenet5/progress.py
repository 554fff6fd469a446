"""A dependency-free progress bar: live on a terminal, one final line in a log.

    with ProgressBar(total=469, desc="epoch 1/12", unit="batch") as bar:
        for batch in batches:
            ...
            bar.update(1, loss=f"{loss:.4f}")
"""

from __future__ import annotations

import sys
import time


class ProgressBar:
    """Count / total, percent, rate and elapsed time, with `key=value` postfix fields.

    Args:
        total: the count at 100% (None if unknown). desc: label. unit: what is counted.
        stream: where to draw (stderr). enabled: False silences it; None enables it.

    On a TTY it redraws in place at most 10 times a second; elsewhere (CI logs, pipes) it
    prints nothing until `close`, which prints one final line.
    """

    def __init__(self, total=None, desc: str = "", unit: str = "it", stream=None, enabled=None) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = True if enabled is None else bool(enabled)
        self.count = 0
        self.postfix: dict[str, str] = {}
        self.started = time.perf_counter()
        self._last_draw = 0.0
        self._live = self.enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._closed = False

    def update(self, n: int = 1, **postfix) -> None:
        self.count += n
        if postfix:
            self.postfix.update({key: str(value) for key, value in postfix.items()})
        if self._live:
            now = time.perf_counter()
            if now - self._last_draw >= 0.1 or (self.total is not None and self.count >= self.total):
                self._last_draw = now
                self.stream.write("\r" + self.line())
                self.stream.flush()

    def line(self) -> str:
        elapsed = time.perf_counter() - self.started
        rate = self.count / elapsed if elapsed > 0 else 0.0
        parts = [self.desc] if self.desc else []
        if self.total:
            fraction = min(self.count / self.total, 1.0)
            filled = int(fraction * 20)
            parts.append(f"[{'#' * filled}{'.' * (20 - filled)}] {self.count}/{self.total} ({fraction * 100:3.0f}%)")
        else:
            parts.append(f"{self.count} {self.unit}")
        parts.append(f"{_human(rate)} {self.unit}/s, {elapsed:.1f}s")
        parts += [f"{key}={value}" for key, value in self.postfix.items()]
        return "  ".join(parts)

    def close(self) -> None:
        if self._closed or not self.enabled:
            self._closed = True
            return
        self._closed = True
        self.stream.write(("\r" if self._live else "") + self.line() + "\n")
        self.stream.flush()

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _human(value: float) -> str:
    for unit in ("", "k", "M", "G"):
        if abs(value) < 1000:
            return f"{value:.1f}{unit}"
        value /= 1000
    return f"{value:.1f}T"
