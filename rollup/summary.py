"""Which snapshots make one merged row over a range: whole UTC days from daily snapshots,
the hours at the edges from hourly ones, and what the snapshots do not cover yet, said
explicitly. Pure; times are UTC epoch ms and every window is half-open ``[start, end)``."""

from __future__ import annotations

from dataclasses import dataclass

from exporter.records import Gap
from exporter.timestamps import HOUR_MS

DAY_MS = 24 * HOUR_MS
OPEN, NOT_ROLLED_UP, LATE_EVENTS = "open", "not_rolled_up", "late_events"
"""Gap reasons: the hour has not ended; it has ended but has no snapshot (the hourly job has
not run for it yet, or its rows were pruned); its snapshot predates late events that wait
for re-aggregation (the figures leave them out)."""


@dataclass(frozen=True, slots=True)
class Coverage:
    """What storage holds for a range: window starts with a platform snapshot (the platform
    row is written for every rolled-up window, events or not), dirty window starts, the
    start of history (hours before it hold no event) and now."""

    daily: frozenset[int]
    hourly: frozenset[int]
    dirty_daily: frozenset[int]
    dirty_hourly: frozenset[int]
    history_start_ms: int | None
    now_ms: int


@dataclass(frozen=True, slots=True)
class Plan:
    """The whole hours ``[start_ms, end_ms)`` summarised, the daily and hourly snapshots to
    merge, and the gaps (adjacent ones of one reason joined), ascending."""

    start_ms: int
    end_ms: int
    days: tuple[int, ...]
    hours: tuple[int, ...]
    gaps: tuple[Gap, ...]


def hour_bounds(start_ms: int, end_ms: int) -> tuple[int, int]:
    """``[start, end)`` widened to whole UTC hours: snapshots cannot split an hour."""
    return start_ms - start_ms % HOUR_MS, -(-end_ms // HOUR_MS) * HOUR_MS


def plan(start_ms: int, end_ms: int, coverage: Coverage) -> Plan:
    """Cover ``[start_ms, end_ms)`` (widened to whole hours): a UTC day wholly inside uses its
    daily snapshot unless it is dirty and all its hours are there to use instead; every other
    hour uses its hourly snapshot, or is a gap unless it is before history."""
    first, last = hour_bounds(start_ms, end_ms)
    days: list[int] = []
    hours: list[int] = []
    gaps: list[Gap] = []
    day = first - first % DAY_MS
    while day < last:
        if first <= day and day + DAY_MS <= last and _use_day(day, coverage):
            days.append(day)
            _day_gaps(day, coverage, gaps)
        else:
            for hour in range(max(day, first), min(day + DAY_MS, last), HOUR_MS):
                _plan_hour(hour, coverage, hours, gaps)
        day += DAY_MS
    return Plan(first, last, tuple(days), tuple(hours), tuple(gaps))


def _use_day(day: int, coverage: Coverage) -> bool:
    if day not in coverage.daily:
        return False
    if day not in coverage.dirty_daily:
        return True
    day_hours = range(day, day + DAY_MS, HOUR_MS)
    return not all(hour in coverage.hourly for hour in day_hours)


def _day_gaps(day: int, coverage: Coverage, gaps: list[Gap]) -> None:
    """A used daily snapshot lacks late events when the day is dirty, or when one of its
    hours is (ingest marks the hour; the day is marked once the hour is rolled up again)."""
    if day in coverage.dirty_daily:
        _add_gap(gaps, day, day + DAY_MS, LATE_EVENTS)
        return
    for hour in range(day, day + DAY_MS, HOUR_MS):
        if hour in coverage.dirty_hourly:
            _add_gap(gaps, hour, hour + HOUR_MS, LATE_EVENTS)


def _plan_hour(hour: int, coverage: Coverage, hours: list[int], gaps: list[Gap]) -> None:
    if hour in coverage.hourly:
        hours.append(hour)
        if hour in coverage.dirty_hourly:
            _add_gap(gaps, hour, hour + HOUR_MS, LATE_EVENTS)
    elif coverage.history_start_ms is None or hour < coverage.history_start_ms:
        return  # no event was ever accepted for it: an exact zero, not a gap
    elif hour + HOUR_MS > coverage.now_ms:
        _add_gap(gaps, hour, hour + HOUR_MS, OPEN)
    else:
        _add_gap(gaps, hour, hour + HOUR_MS, NOT_ROLLED_UP)


def _add_gap(gaps: list[Gap], start_ms: int, end_ms: int, reason: str) -> None:
    if gaps and gaps[-1].end_ms == start_ms and gaps[-1].reason == reason:
        gaps[-1] = Gap(gaps[-1].start_ms, end_ms, reason)
    else:
        gaps.append(Gap(start_ms, end_ms, reason))


def spans(starts: tuple[int, ...], step_ms: int) -> list[tuple[int, int]]:
    """Consecutive window starts as ``[start, end)`` spans, so each reads in one query."""
    out: list[tuple[int, int]] = []
    for start in starts:
        if out and out[-1][1] == start:
            out[-1] = (out[-1][0], start + step_ms)
        else:
            out.append((start, start + step_ms))
    return out
