"""The client's local time now and the traffic light for writing or calling (F4).

A number may map to several zones. Zones that currently share an offset give
one certain time; zones with different offsets give a range and the worst
light among them, so the operator never sees a confident wrong time.
Offsets come from zoneinfo at the given instant, so DST is handled by tzdata.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from functools import lru_cache
from typing import Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

GREEN, ORANGE, RED, UNKNOWN = "green", "orange", "red", "unknown"
_SEVERITY = {GREEN: 0, ORANGE: 1, RED: 2}


@dataclass(frozen=True)
class Thresholds:
    """Portal settings for the traffic light; all local times of the client."""

    orange_start: time = time(8, 0)
    green_start: time = time(9, 0)
    green_end: time = time(20, 0)
    orange_end: time = time(22, 0)


@dataclass(frozen=True)
class ClientTime:
    """The client's time now as the widget shows it."""

    text: str
    light: str
    zone_label: str
    certain: bool


def _within(t: time, start: time, end: time) -> bool:
    """Say whether t is in [start, end), a window that may wrap past midnight."""
    if start <= end:
        return start <= t < end
    return t >= start or t < end


def light_for(local: time, thresholds: Thresholds = Thresholds()) -> str:
    """Return the light for a local time: green inside the green window, orange inside the orange one, else red."""
    # Asking "green window? then orange window?" instead of walking the four
    # edges in order keeps odd settings (overlaps, night shifts) meaningful.
    if _within(local, thresholds.green_start, thresholds.green_end):
        return GREEN
    if _within(local, thresholds.orange_start, thresholds.orange_end):
        return ORANGE
    return RED


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo | None:
    """Return the zone for a name, or None when tzdata does not know it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        return None


def utc_label(offset: timedelta) -> str:
    """Return 'UTC+3', 'UTC+5:30', 'UTC-4' or 'UTC' for an offset."""
    minutes = int(offset.total_seconds() // 60)
    if minutes == 0:
        return "UTC"
    sign = "+" if minutes > 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


_UNKNOWN = ClientTime("", UNKNOWN, "", False)


def client_time(zones: Sequence[str], now_utc: datetime, thresholds: Thresholds = Thresholds()) -> ClientTime:
    """Return the client's local time and light for the zones they may be in."""
    if now_utc.tzinfo is None:
        now_utc = now_utc.replace(tzinfo=timezone.utc)  # naive means UTC in this code base
    by_offset: dict[timedelta, datetime] = {}
    for name in zones or ():
        zone = _zone(name) if isinstance(name, str) else None
        if zone is None:
            continue
        local = now_utc.astimezone(zone)
        by_offset.setdefault(local.utcoffset() or timedelta(0), local)
    if not by_offset:
        return _UNKNOWN
    offsets = sorted(by_offset)
    lights = [light_for(by_offset[o].time(), thresholds) for o in offsets]
    worst = max(lights, key=_SEVERITY.__getitem__)
    first, last = by_offset[offsets[0]], by_offset[offsets[-1]]
    if len(offsets) == 1:
        return ClientTime(first.strftime("%H:%M"), worst, utc_label(offsets[0]), True)
    return ClientTime(
        f"{first:%H:%M}–{last:%H:%M}",
        worst,
        f"{utc_label(offsets[0])}…{utc_label(offsets[-1])}",
        False,
    )
