"""Retention cutoffs and rollup windows, pure. Windows are half-open ``[start, end)``;
a row is expired when its time is strictly before ``now - keep``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Retention:
    """How long each kind of data is kept (docs/configuration.md defaults): raw events (and their
    bookkeeping), hourly snapshots and daily snapshots."""

    events: timedelta = timedelta(hours=48)
    hourly: timedelta = timedelta(days=7)
    daily: timedelta = timedelta(days=90)


def cutoff(now: datetime, keep: timedelta) -> datetime:
    """Oldest time still kept (``now - keep``): rows strictly before it are deleted, a row
    exactly at it is kept. ``now`` must be aware."""
    return _aware(now) - keep


def hour_floor(when: datetime) -> datetime:
    """Start of the UTC hour ``[H, H+1h)`` holding ``when`` (aware), in UTC."""
    return _aware(when).astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_floor(when: datetime) -> datetime:
    """Start of the UTC day ``[D, D+1d)`` holding ``when`` (aware), in UTC."""
    return hour_floor(when).replace(hour=0)


def closed_hours(now: datetime, since: datetime) -> list[datetime]:
    """Start of every hour ``[H, H+1h)`` with ``since <= H`` and ``H + 1h <= now`` (closed
    by ``now``), ascending; empty when there is none."""
    return _closed(now, since, hour_floor, HOUR)


def closed_days(now: datetime, since: datetime) -> list[datetime]:
    """Start of every UTC day ``[D, D+1d)`` with ``since <= D`` and ``D + 1d <= now``,
    ascending; empty when there is none."""
    return _closed(now, since, day_floor, DAY)


def windows_between(start: datetime, end: datetime, period: str) -> list[datetime]:
    """Starts of every ``period`` (``hourly`` or ``daily``) window beginning in
    ``[floor(start), end)``, ascending: the windows a backfill over that range rewrites."""
    floor, step = (hour_floor, HOUR) if period == "hourly" else (day_floor, DAY)
    first = floor(start)
    count = -(-(end - first) // step)  # ceiling division; none when end <= first
    return [first + k * step for k in range(max(0, count))]


def _closed(
    now: datetime, since: datetime, floor: Callable[[datetime], datetime], step: timedelta
) -> list[datetime]:
    first = floor(since)
    if first < since:
        first += step
    count = (floor(now) - first) // step  # windows ending at or before floor(now) <= now
    return [first + k * step for k in range(max(0, count))]


def _aware(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"retention times must be timezone-aware, got naive {when.isoformat()}")
    return when
