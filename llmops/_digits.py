"""Whole numbers typed by people (versions, shard numbers, list indexes).

``str.isdigit()`` accepts characters such as ``²`` that ``int()`` rejects, and ``int()`` refuses
strings of more than 4300 digits: both ended in a traceback from deep inside a command. One check
here keeps every such place to plain ASCII digits of a sensible length.
"""

from __future__ import annotations

__all__ = ["small_int"]

_MAX_DIGITS = 9


def small_int(text: str) -> int | None:
    """``text`` as a non-negative int when it is 1 to 9 ASCII digits, else ``None``."""
    if 0 < len(text) <= _MAX_DIGITS and text.isascii() and text.isdigit():
        return int(text)
    return None
