"""The one guard every rollup path goes through (scheduler, catch-up, CLI, API): a window's
snapshot is written only from complete inputs. Pure; windows are half-open ``[start, end)``.

A window is refused when it is not closed yet, lies before the first event ever accepted,
or starts before a watermark that retention recorded when it pruned the window's inputs
(raw events for hours; hourly snapshots for days) or its own rows. The recorded watermarks
decide, never the current settings, so changing retention cannot fool the guard.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from exporter.records import Horizons, Skip
from exporter.timestamps import datetime_to_ms, format_rfc3339, ms_to_datetime
from rollup.windows import day_floor, hour_floor, windows_between

PERIOD_SPAN = {"hourly": timedelta(hours=1), "daily": timedelta(days=1)}


class Refused(Exception):
    """A window the guard will not (re)compute: ``reason`` is a short code, ``message``
    says why and what to do instead."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def check(period: str, start: datetime, now: datetime, horizons: Horizons) -> None:
    """Raise ``Refused`` unless the ``period`` window starting at ``start`` may be written
    at ``now`` (both aware)."""
    if start > now:  # before computing the end: the last window of year 9999 has none
        raise Refused("future", "the window is in the future")
    end = start + PERIOD_SPAN[period]
    if end > now:
        raise Refused("open", f"the window is still open (it closes at {_iso(end)})")
    start_ms, end_ms = datetime_to_ms(start), datetime_to_ms(end)
    if horizons.history_start_ms is None:
        raise Refused("no_history", "no event has been accepted yet")
    if end_ms <= horizons.history_start_ms:
        raise Refused(
            "before_history",
            f"before the first event (history starts {format_rfc3339(horizons.history_start_ms)})",
        )
    _check_watermarks(period, start_ms, horizons)


def _check_watermarks(period: str, start_ms: int, horizons: Horizons) -> None:
    if period == "hourly" and start_ms < horizons.events_from_ms:
        raise Refused(
            "events_pruned",
            "its raw events were pruned by event retention (complete from"
            f" {format_rfc3339(horizons.events_from_ms)}); the stored snapshot is kept",
        )
    if start_ms < horizons.hourly_from_ms:
        raise Refused(
            "hourly_pruned",
            "hourly snapshots before"
            f" {format_rfc3339(horizons.hourly_from_ms)} were pruned by hourly retention",
        )
    if period == "daily" and start_ms < horizons.daily_from_ms:
        raise Refused(
            "daily_pruned",
            "daily snapshots before"
            f" {format_rfc3339(horizons.daily_from_ms)} were pruned by daily retention",
        )


def split(
    period: str, windows: list[datetime], now: datetime, horizons: Horizons
) -> tuple[list[datetime], list[Skip]]:
    """The windows the guard allows at ``now``, and the refused ones as ranges."""
    allowed, refused = [], []
    for window in windows:
        try:
            check(period, window, now, horizons)
            allowed.append(window)
        except Refused as refusal:
            refused.append((window, refusal))
    return allowed, coalesce(period, refused)


def plan_range(
    period: str, start: datetime, end: datetime, now: datetime, horizons: Horizons
) -> tuple[list[datetime], list[Skip]]:
    """``split`` of every window starting in ``[floor(start), end)``, without listing the
    windows before the history start or in the future one by one (each of those ranges is
    refused for one reason), so a range from year 1 to 9999 plans as fast as a day."""
    floor = hour_floor if period == "hourly" else day_floor
    current, first = floor(now), floor(start)
    history = horizons.history_start_ms
    low = current if history is None else min(current, floor(ms_to_datetime(history)))
    high = current + PERIOD_SPAN[period]  # the first window in the future
    middle = windows_between(max(first, low), min(end, high), period)
    allowed, skipped = split(period, middle, now, horizons)
    head = _in_bulk(period, first, min(low, end), now, horizons)
    tail = _in_bulk(period, max(first, high), end, now, horizons)
    return allowed, [*head, *skipped, *tail]


def _in_bulk(
    period: str, first: datetime, end: datetime, now: datetime, horizons: Horizons
) -> list[Skip]:
    """The windows from ``first`` (aligned) up to ``end`` as one refused range, with the
    reason the guard gives the first: ``plan_range`` passes ranges refused for one reason."""
    step = PERIOD_SPAN[period]
    if end <= first:
        return []
    count = -(-(end - first) // step)
    try:
        check(period, first, now, horizons)
    except Refused as refusal:
        last = first + (count - 1) * step
        return [Skip(period, first, last, count, refusal.reason, refusal.message)]
    raise AssertionError(f"{period} window {first.isoformat()} is not refused")


def coalesce(period: str, refused: list[tuple[datetime, Refused]]) -> list[Skip]:
    """Group refusals of consecutive windows with the same reason into ranges, so a
    six-year backfill reports a line per reason, not a line per hour."""
    step = PERIOD_SPAN[period]
    skips: list[Skip] = []
    for window, refusal in refused:
        last = skips[-1] if skips else None
        if last and last.reason == refusal.reason and last.last + step == window:
            skips[-1] = Skip(period, last.first, window, last.count + 1, last.reason, last.message)
        else:
            skips.append(Skip(period, window, window, 1, refusal.reason, refusal.message))
    return skips


def _iso(when: datetime) -> str:
    return format_rfc3339(datetime_to_ms(when))
