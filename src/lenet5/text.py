"""Text that must stay on one line: an error message, a file's name in a line of output."""

from __future__ import annotations

import os

MAX_ERROR_CHARACTERS = 1000


def one_line(message, limit: int = MAX_ERROR_CHARACTERS) -> str:
    """`message` (or an exception, or any value's str) on one line of at most `limit`
    characters and the note of what was cut: an error may quote what a file holds or what a
    decoder said, and a crafted file can hold megabytes or line breaks. The one shortener of
    every message lenet5 prints."""
    message = " ".join(str(message).split())
    if len(message) <= limit:
        return message
    return f"{message[:limit]}... ({len(message) - limit:,} more characters)"


def shown_name(name: str | os.PathLike) -> str:
    """A file's name for a line of output: as it is, or, when it holds a line break or another
    character that does not print (or starts with a quote, so as not to pass for one that was
    quoted), quoted and escaped as Python writes a string: one file stays one line, and its
    name can still be read back."""
    text = os.fspath(name)
    if text.isprintable() and not text.startswith(("'", '"')):
        return text
    return repr(text)
