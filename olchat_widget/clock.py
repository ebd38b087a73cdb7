"""What time it is, for the whole app: one clock on the app (``app.extensions``).

Everything that means "now" — the client's local time and traffic light, the
red-zone question before a send, a line's check budget of the day, cache and
verdict freshness kept in the database, token ages, the demo gateway's message
times — reads it here, so a test (or an operator's reproduction) can pin the
hour. Durations that only measure waiting (timeouts, pauses, the breaker's
cool-down) stay on ``time.monotonic``: no hour of the day changes them.
"""
from __future__ import annotations

from datetime import datetime, timezone

from flask import current_app, has_app_context

KEY = "olchat_clock"


class SystemClock:
    """The machine's clock, in UTC whatever the machine's time zone."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


_SYSTEM = SystemClock()


def install_clock(app, clock=None) -> None:
    """Put ``clock`` (anything with ``now() -> aware UTC datetime``) on ``app``; the system clock by default."""
    app.extensions[KEY] = clock or _SYSTEM


def clock_of(app):
    return app.extensions.get(KEY, _SYSTEM)


def now() -> datetime:
    """Aware UTC now from the current app's clock (the system clock outside an app)."""
    clock = clock_of(current_app) if has_app_context() else _SYSTEM
    return clock.now().astimezone(timezone.utc)


def utcnow() -> datetime:
    """Naive UTC now, as the database stores it (SQLite drops tz info; naive and aware do not compare)."""
    return now().replace(tzinfo=None)


def unix_now() -> int:
    """Whole unix seconds now (message times, token stamps)."""
    return int(now().timestamp())
