"""The progress bar: live and throttled on a terminal, one final line anywhere else."""

import io

import pytest

from lenet5 import progress
from lenet5.progress import ProgressBar


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def clock(monkeypatch):
    """A clock the test moves by hand: `clock.now` seconds."""
    class Clock:
        now = 100.0

    monkeypatch.setattr(progress, "_clock", lambda: Clock.now)
    return Clock


def test_not_a_terminal_writes_nothing_until_close_then_one_line(clock):
    stream = io.StringIO()
    with ProgressBar(10, desc="epoch 1/3", unit="batch", stream=stream) as bar:
        for step in range(3):
            clock.now += 0.5
            bar.update(1, loss=f"{0.5 / (step + 1):.3f}")
        assert stream.getvalue() == ""
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n") and "\r" not in text
    assert text.startswith("epoch 1/3  [######..............] 3/10   30%")
    assert "2.0 batch/s" in text and "1.5s" in text and text.rstrip().endswith("loss=0.167")


def test_a_terminal_redraws_in_place_at_most_ten_times_a_second(clock):
    stream = Terminal()
    bar = ProgressBar(1000, stream=stream)
    for _ in range(100):  # 100 updates within 0.5 s: 1 draw at the start, then one per 0.1 s
        clock.now += 0.005
        bar.update()
    assert stream.getvalue().count("\r") == 5
    clock.now += 0.2
    bar.update(900)  # reaching the total draws at once
    assert stream.getvalue().count("\r") == 6 and "1000/1000  100%" in stream.getvalue()
    bar.close()
    assert stream.getvalue().endswith("\n") and stream.getvalue().count("\n") == 1


def test_a_shorter_line_overwrites_the_longer_one_before_it(clock):
    stream = Terminal()
    bar = ProgressBar(None, stream=stream)
    bar.update(1, note="a long postfix value")
    clock.now += 1
    bar.update(1, note="x")
    last = stream.getvalue().split("\r")[-1]
    first = stream.getvalue().split("\r")[1]
    assert len(last) >= len(first) and last.rstrip().endswith("note=x")


def test_disabled_writes_nothing_even_on_a_terminal():
    stream = Terminal()
    with ProgressBar(5, stream=stream, enabled=False) as bar:
        bar.update(5)
    assert stream.getvalue() == ""


def test_close_is_idempotent_and_the_context_closes_on_errors():
    stream = io.StringIO()
    with pytest.raises(RuntimeError):
        with ProgressBar(5, stream=stream) as bar:
            bar.update(2)
            raise RuntimeError("stop")
    bar.close()
    bar.update(1)  # after close: ignored
    assert stream.getvalue().count("\n") == 1 and "2/5" in stream.getvalue()


def test_bytes_are_shown_with_decimal_prefixes(clock):
    stream = io.StringIO()
    with ProgressBar(9_912_422, desc="downloading x.gz", unit="B", stream=stream) as bar:
        clock.now += 2
        bar.update(4_200_000)
    assert "4.2 MB/9.9 MB   42%  2.1 MB/s  2.0s" in stream.getvalue()


def test_unknown_total_shows_the_count_and_long_runs_show_minutes(clock):
    stream = io.StringIO()
    with ProgressBar(stream=stream, unit="img") as bar:
        clock.now += 125
        bar.update(250)
    assert stream.getvalue() == "250 img  2.0 img/s  2:05\n"
