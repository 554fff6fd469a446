"""A dependency-free progress bar: live on a terminal, one final line in a log.

    with ProgressBar(total=469, desc="epoch 1/12", unit="batch") as bar:
        for batch in batches:
            ...
            bar.update(1, loss=f"{loss:.4f}")
"""

from __future__ import annotations

import sys
import time
from typing import IO

_clock = time.perf_counter  # a module attribute so tests can drive time
REDRAW_INTERVAL = 0.1  # seconds: at most ~10 redraws a second
BAR_WIDTH = 20


class ProgressBar:
    """Count / total, percent, rate and elapsed time, with `key=value` postfix fields.

    Args:
        total: the count at 100% (None if unknown). desc: a label. unit: what is counted
            ("B" shows bytes as kB / MB). stream: where to write (stderr by default).
        enabled: False silences it entirely; None or True enables it.

    On a TTY it redraws its line in place (with "\\r") at most 10 times a second; anywhere else
    (CI logs, pipes, files) it writes nothing until `close`, which writes one final line.
    """

    def __init__(self, total: int | None = None, desc: str = "", unit: str = "it", stream: IO[str] | None = None,
                 enabled: bool | None = None) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled is None or bool(enabled)
        self.count = 0
        self.postfix: dict[str, str] = {}
        self.started = _clock()
        self._last_draw: float | None = None
        self._drawn_width = 0
        self._live = self.enabled and _isatty(self.stream)
        self._closed = False

    def update(self, n: int = 1, **postfix) -> None:
        """Advance by `n`; keyword arguments replace the `key=value` fields shown after the bar."""
        if self._closed:
            return
        self.count += n
        self.postfix.update({key: str(value) for key, value in postfix.items()})
        if self._live:
            now = _clock()
            finished = self.total is not None and self.count >= self.total
            if self._last_draw is None or now - self._last_draw >= REDRAW_INTERVAL or finished:
                self._last_draw = now
                self._draw("")

    def line(self) -> str:
        """The text the bar shows now."""
        elapsed = max(_clock() - self.started, 0.0)
        rate = self.count / elapsed if elapsed > 0 else 0.0
        parts = [self.desc] if self.desc else []
        if self.total:
            fraction = min(max(self.count / self.total, 0.0), 1.0)
            filled = int(fraction * BAR_WIDTH)
            parts.append(f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self._amount(self.count)}/"
                         f"{self._amount(self.total)}  {fraction * 100:3.0f}%")
        else:
            parts.append(self._amount(self.count) if self.unit == "B" else f"{self.count} {self.unit}")
        big = self.unit == "B" or rate >= 1000
        parts.append(f"{_scaled(rate)}{self.unit}/s" if big else f"{rate:.1f} {self.unit}/s")
        parts.append(_duration(elapsed))
        parts += [f"{key}={value}" for key, value in self.postfix.items()]
        return "  ".join(parts)

    def close(self) -> None:
        """Write the final line (once); a silenced bar writes nothing."""
        if self._closed:
            return
        self._closed = True
        if self.enabled:
            self._draw("\n")

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ProgressBar({self.count}/{self.total} {self.unit}, desc={self.desc!r})"

    def _draw(self, end: str) -> None:
        text = self.line()
        if self._live:  # pad over what a longer previous line left on screen
            text, self._drawn_width = "\r" + text.ljust(self._drawn_width), len(text)
        self.stream.write(text + end)
        self.stream.flush()

    def _amount(self, value: float) -> str:
        return f"{_scaled(value)}B" if self.unit == "B" else str(value)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def _scaled(value: float) -> str:
    """1234567 -> "1.2 M" (decimal prefixes; the caller appends the unit)."""
    for prefix in ("", "k", "M", "G"):
        if abs(value) < 1000:
            break
        value /= 1000
    else:
        prefix = "T"
    return f"{value:.1f} {prefix}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
