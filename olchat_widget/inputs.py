"""Reading values a request brings: ids, bounded numbers, times, JSON bodies.

Nothing from a request is trusted to have the shape it claims. Python's
``int()`` accepts non-ASCII digits ('²' passes ``isdigit`` and then fails,
'١٢' converts), JSON's ``1e999`` parses to infinity, and a Python int can be
far larger than a database column: each reader here answers ``None`` for
anything but a plain number in its range, and the caller turns that into a 400.
"""
from __future__ import annotations

import json
import re

# Bitrix24 ids (entity types, records, users) fit a 32-bit signed integer.
MAX_ID = 2**31 - 1

_TIME = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]", re.ASCII)


def parse_int(value, low: int = 0, high: int = MAX_ID) -> int | None:
    """Return ``value`` as an int in [low, high]: ASCII digits (optionally signed) or a JSON integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        # JSON senders sometimes write 2.0; infinity and NaN are not numbers of anything.
        if value != value or value in (float("inf"), float("-inf")) or not value.is_integer():
            return None
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in ("-", "+") else text
        # 20 digits is past any range we accept: no need to convert a megabyte of them.
        if not digits or len(digits) > 20 or not (digits.isascii() and digits.isdigit()):
            return None
        value = int(text)
    if not isinstance(value, int):
        return None
    return value if low <= value <= high else None


def parse_id(value) -> int | None:
    """A Bitrix24 id: 0 … 2**31-1."""
    return parse_int(value, 0, MAX_ID)


def parse_time(value) -> str | None:
    """An 'HH:MM' time of day in ASCII digits, or None."""
    if isinstance(value, str) and _TIME.fullmatch(value):
        return value
    return None


def loads_json(raw: str | bytes | None):
    """Parse JSON from a request; None for anything that is not JSON (bad UTF-8, too deep, broken)."""
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
