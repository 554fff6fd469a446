"""What a JSON field holds, for the checks that read run files, and how it is named in an error.

`json.loads` gives bool for true/false, which Python counts as an int: a field that must be a
number refuses it, as a reader of the file would.
"""

from __future__ import annotations

import json


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def json_type(value) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
             int: "an int", float: "a number"}
    return names.get(type(value), type(value).__name__)


def shown(value) -> str:
    """A value in an error message: short, whatever a crafted file put there."""
    if value is None:
        return "none"  # missing, or null
    text = json.dumps(value) if isinstance(value, (str, int, float, bool)) else json_type(value)
    if isinstance(value, list):
        text = f"a list of {len(value)}"
    return text if len(text) <= 60 else text[:57] + "..."
