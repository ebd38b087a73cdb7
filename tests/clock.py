"""A clock for tests: it starts at an hour the test chooses and runs on from there.

Pinning only the start keeps durations real (token ages, cache freshness,
"abandoned after two minutes"), so the app behaves as it would at that hour;
``advance`` jumps ahead without waiting.
"""
from __future__ import annotations

import threading
import time
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

MOSCOW = ZoneInfo("Europe/Moscow")
DAY = date(2026, 12, 2)  # a Wednesday, far from any DST change (Moscow has none anyway)


def moscow(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    """An aware instant at hour:minute Moscow time (UTC+3)."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=MOSCOW)


NOON = moscow(12, 0)     # every client of the demo data is in its green window
LATE = moscow(23, 30)    # Moscow clients are in the red zone


class PinnedClock:
    """Anything with ``now()``: the app's clock in tests (olchat_widget.clock)."""

    def __init__(self, start: datetime):
        if start.tzinfo is None:
            raise ValueError("pin the clock with an aware datetime")
        self._start = start.astimezone(timezone.utc)
        self._began = time.monotonic()
        self._jumped = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._start + self._jumped + timedelta(seconds=time.monotonic() - self._began)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._jumped += timedelta(seconds=seconds)

    def set(self, start: datetime) -> None:
        """Move to another instant (and run on from it)."""
        with self._lock:
            self._start, self._began, self._jumped = start.astimezone(timezone.utc), time.monotonic(), timedelta(0)


def pin_clock(app, start: datetime) -> PinnedClock:
    """Pin ``app``'s clock at ``start``; return the clock to move it later."""
    from olchat_widget.clock import install_clock

    clock = PinnedClock(start)
    install_clock(app, clock)
    return clock
