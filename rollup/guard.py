"""The one guard every rollup path goes through (scheduler, catch-up, CLI, API): a window's
snapshot is written only from complete inputs. Pure; windows are half-open ``[start, end)``.

A window is refused when it is not closed yet, lies before the first event ever accepted,
or starts before a watermark that retention recorded when it pruned the window's inputs
(raw events for hours; hourly snapshots for days) or its own rows. The recorded watermarks
decide, never the current settings, so changing retention cannot fool the guard.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from exporter.storage.sqlite.horizons import Horizons
from exporter.timestamps import datetime_to_ms, format_rfc3339

PERIOD_SPAN = {"hourly": timedelta(hours=1), "daily": timedelta(days=1)}


class Refused(Exception):
    """A window the guard will not (re)compute: ``reason`` is a short code, ``message``
    says why and what to do instead."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class Skip:
    """Consecutive windows of one period refused for one reason: ``[first, last]``."""

    period: str
    first: datetime
    last: datetime
    count: int
    reason: str
    message: str

    def to_json(self) -> dict[str, object]:
        return {
            "period": self.period,
            "first": _iso(self.first),
            "last": _iso(self.last),
            "windows": self.count,
            "reason": self.reason,
            "message": self.message,
        }

    def describe(self) -> str:
        span = _iso(self.first) if self.count == 1 else f"{_iso(self.first)}..{_iso(self.last)}"
        noun = "window" if self.count == 1 else "windows"
        return f"skipped {self.period} {span} ({self.count} {noun}): {self.message}"


def check(period: str, start: datetime, now: datetime, horizons: Horizons) -> None:
    """Raise ``Refused`` unless the ``period`` window starting at ``start`` may be written
    at ``now`` (both aware)."""
    end = start + PERIOD_SPAN[period]
    if start > now:
        raise Refused("future", "the window is in the future")
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
