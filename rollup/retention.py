"""Retention cutoffs and rollup windows, pure. Windows are half-open ``[start, end)``;
a row is expired when its time is strictly before ``now - keep``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Retention:
    """How long each kind of data is kept (DESIGN §7 defaults)."""

    events: timedelta = timedelta(hours=48)
    hourly: timedelta = timedelta(days=7)
    daily: timedelta = timedelta(days=90)


def cutoff(now: datetime, keep: timedelta) -> datetime:
    """Oldest time still kept: rows strictly before it are deleted."""
    return now - keep


def is_expired(ts: datetime, now: datetime, keep: timedelta) -> bool:
    return ts < cutoff(now, keep)


def hour_floor(when: datetime) -> datetime:
    """Start of the UTC hour holding ``when``."""
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_floor(when: datetime) -> datetime:
    """Start of the UTC day holding ``when``."""
    return hour_floor(when).replace(hour=0)


def closed_hours(now: datetime, since: datetime) -> list[datetime]:
    """Every hour ``[H, H+1h)`` with ``since <= H`` and ``H + 1h <= now``, ascending."""
    return _closed(now, since, hour_floor, HOUR)


def closed_days(now: datetime, since: datetime) -> list[datetime]:
    """Every UTC day ``[D, D+1d)`` with ``since <= D`` and ``D + 1d <= now``, ascending."""
    return _closed(now, since, day_floor, DAY)


def _closed(now: datetime, since: datetime, floor: object, step: timedelta) -> list[datetime]:
    assert callable(floor)
    start: datetime = floor(since)
    if start < since:
        start += step
    windows = []
    while start + step <= now:
        windows.append(start)
        start += step
    return windows
