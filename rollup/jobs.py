"""Rollup jobs: storage -> pure aggregation -> storage. Each takes a ``Store`` (one
connection's view of storage) and ``now`` (UTC, aware), so the daemon, the CLI and tests
run the same code. Every window is half-open ``[start, end)``; re-running any job leaves
identical rows, and every window goes through the rollup guard first."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from exporter.records import Horizons, Skip, SnapshotRow
from exporter.storage.base import Store
from exporter.timestamps import datetime_to_ms, format_rfc3339, ms_to_datetime
from rollup import guard
from rollup.aggregate import build_parts
from rollup.codec import encode_parts
from rollup.daily_merge import DailyMerge
from rollup.digest import GAMMA, MIN_MS
from rollup.parts import SnapshotParts
from rollup.windows import Retention, closed_days, closed_hours, day_floor

T = TypeVar("T")
Write = Callable[[Callable[[Store], T]], T]
"""Runs ``fn(write_store)`` in a write transaction and returns its result. In the daemon it
queues behind ingest commits on the writer's connection (one write path); in the CLI it is
the same connection the job reads from (``direct_write``)."""

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """What one run did: the windows it wrote (or would delete from), row counts, and the
    windows the guard refused, coalesced into ranges."""

    windows: tuple[datetime, ...] = ()
    rows: int = 0
    deleted: dict[str, int] = field(default_factory=dict)
    skipped: tuple[Skip, ...] = ()

    def describe(self) -> str:
        if not self.windows:
            return "-"
        first, last = self.windows[0], self.windows[-1]
        span = first.isoformat() if first == last else f"{first.isoformat()}..{last.isoformat()}"
        return f"{span} ({len(self.windows)})"

    def merge(self, other: JobOutcome) -> JobOutcome:
        return JobOutcome(
            self.windows + other.windows,
            self.rows + other.rows,
            self.deleted | other.deleted,
            self.skipped + other.skipped,
        )


def direct_write(store: Store) -> Write[Any]:
    """A ``Write`` on the job's own store (CLI and tests)."""

    def write(fn: Callable[[Store], T]) -> T:
        with store.transaction():
            return fn(store)

    return write


def _row(period: str, start: datetime, scope: str, parts: SnapshotParts) -> SnapshotRow:
    return SnapshotRow(
        period=period,
        period_start_ms=datetime_to_ms(start),
        scope=scope,
        artifacts_received=parts.artifacts_received,
        artifacts_completed=parts.artifacts_completed,
        artifacts_failed=parts.artifacts_failed,
        ai_cost_usd=parts.ai_cost_usd,
        parts=encode_parts(parts),
        end_to_end=parts.end_to_end.to_bytes(),
    )


def rollup_hour(store: Store, write: Write[Any], hour: datetime, now: datetime) -> int:
    """(Re)write the hourly snapshots of ``[hour, hour + 1h)``: a platform row always and
    one row per org with events; raises ``guard.Refused`` for a window the guard refuses.
    The guard, the dirty mark and the events are read in one transaction; the new rows and
    the clearing of that mark are written in one, so a crash between leaves the mark and an
    event committed meanwhile leaves a newer mark. Marks the day dirty if it has a daily
    snapshot. Returns rows written."""
    start, end = datetime_to_ms(hour), datetime_to_ms(hour + HOUR)
    with store.read_transaction():
        guard.check("hourly", hour, now, store.horizons.load())
        generation = store.snapshots.dirty_generation("hourly", start)
        groups, latencies = store.snapshots.hourly_aggregates(start, end, GAMMA, MIN_MS)
    parts = build_parts(groups, latencies)
    rows = [_row("hourly", hour, scope, p) for scope, p in sorted(parts.items())]
    day = datetime_to_ms(hour.replace(hour=0))

    def save(c: Store) -> None:
        guard.check("hourly", hour, now, c.horizons.load())
        c.snapshots.replace_snapshots("hourly", start, rows)
        c.snapshots.clear_dirty("hourly", start, generation)
        if c.snapshots.has_snapshot("daily", day):
            c.snapshots.mark_dirty("daily", [day])

    write(save)
    return len(rows)


def rollup_day(store: Store, write: Write[Any], day: datetime, now: datetime) -> int:
    """(Re)write the daily snapshots of ``[day, day + 1d)`` by merging that day's hourly
    rows per scope, after bringing its missing or dirty hours up to date; the platform row is
    written even for a quiet day. Raises ``guard.Refused`` when the guard refuses the day
    or an hour of it since the first event has no snapshot and can no longer be computed."""
    start, end = datetime_to_ms(day), datetime_to_ms(day + DAY)
    with store.read_transaction():
        guard.check("daily", day, now, store.horizons.load())
        stale = _stale_hours(store, day, now)
    for hour in stale:
        rollup_hour(store, write, hour, now)
    with store.read_transaction():
        found = store.horizons.load()
        guard.check("daily", day, now, found)
        generation = store.snapshots.dirty_generation("daily", start)
        hourly = DailyMerge(day)
        store.snapshots.read_parts("hourly", start, end, hourly.take)
    _check_hours_complete(day, hourly.platform_starts, found)
    rows = hourly.daily_rows()

    def save(c: Store) -> None:
        guard.check("daily", day, now, c.horizons.load())
        c.snapshots.replace_snapshots("daily", start, rows)
        c.snapshots.clear_dirty("daily", start, generation)

    write(save)
    return len(rows)


def _stale_hours(store: Store, day: datetime, now: datetime) -> list[datetime]:
    """Hours of the day that lack a snapshot or are dirty and that the guard allows."""
    found = store.horizons.load()
    hours = [day + k * HOUR for k in range(24)]
    have = store.snapshots.platform_starts("hourly", datetime_to_ms(day))
    dirty = store.snapshots.dirty_starts("hourly")
    due = [h for h in hours if datetime_to_ms(h) not in have or datetime_to_ms(h) in dirty]
    return [h for h in due if _allowed("hourly", h, now, found)]


def _check_hours_complete(day: datetime, have: set[int], found: Horizons) -> None:
    history = found.history_start_ms if found.history_start_ms is not None else 0
    hours = (datetime_to_ms(day + k * HOUR) for k in range(24))
    missing = [h for h in hours if h >= history and h not in have]
    if missing:
        raise guard.Refused(
            "hours_missing",
            f"{len(missing)} hour(s) of the day, from {format_rfc3339(missing[0])}, have no"
            " snapshot and their raw events were pruned",
        )


def _allowed(period: str, window: datetime, now: datetime, found: Horizons) -> bool:
    try:
        guard.check(period, window, now, found)
    except guard.Refused:
        return False
    return True


def due_hours(store: Store, now: datetime) -> list[datetime]:
    """Closed hours since the history start that lack a snapshot or are dirty and whose
    raw events are complete (catch-up), ascending."""
    with store.read_transaction():
        found = store.horizons.load()
        if found.history_start_ms is None:
            return []
        since = max(found.history_start_ms, found.events_from_ms, found.hourly_from_ms)
        return _due(store, "hourly", closed_hours(now, ms_to_datetime(since)), since)


def due_days(store: Store, now: datetime) -> list[datetime]:
    """Closed UTC days since the history start's day that lack a snapshot or are dirty
    and whose hourly snapshots were not pruned, ascending."""
    with store.read_transaction():
        found = store.horizons.load()
        if found.history_start_ms is None:
            return []
        first_day = datetime_to_ms(day_floor(ms_to_datetime(found.history_start_ms)))
        since = max(first_day, found.hourly_from_ms, found.daily_from_ms)
        return _due(store, "daily", closed_days(now, ms_to_datetime(since)), since)


def dirty_days(store: Store, now: datetime) -> list[datetime]:
    """Closed days marked dirty that the guard allows (the hourly tick re-aggregates them,
    so a day reflects late data within an hour)."""
    with store.read_transaction():
        found = store.horizons.load()
        days = [ms_to_datetime(ms) for ms in sorted(store.snapshots.dirty_starts("daily"))]
    return [d for d in days if _allowed("daily", d, now, found)]


def _due(store: Store, period: str, closed: Iterable[datetime], since_ms: int) -> list[datetime]:
    have = store.snapshots.platform_starts(period, since_ms)
    dirty = store.snapshots.dirty_starts(period)
    return [w for w in closed if datetime_to_ms(w) not in have or datetime_to_ms(w) in dirty]


def plan_windows(
    store: Store, period: str, windows: list[datetime], now: datetime
) -> tuple[list[datetime], list[Skip]]:
    """Split a backfill's windows into those the guard allows now and the refused ranges
    (an API request refuses up front instead of recording an empty run)."""
    with store.read_transaction():
        found = store.horizons.load()
    return guard.split(period, windows, now, found)


def plan_range(
    store: Store, period: str, start: datetime, end: datetime, now: datetime
) -> tuple[list[datetime], list[Skip]]:
    """``plan_windows`` for every window starting in ``[floor(start), end)``, however far
    the range reaches into the past or the future (``guard.plan_range``)."""
    with store.read_transaction():
        found = store.horizons.load()
    return guard.plan_range(period, start, end, now, found)


Progress = Callable[[int, int], None]
OneWindow = Callable[[Store, Write[Any], datetime, datetime], int]


def run_windows(
    store: Store,
    write: Write[Any],
    windows: list[datetime],
    period: str,
    now: datetime,
    progress: Progress | None = None,
) -> JobOutcome:
    """Roll up ``windows`` of ``period`` in order through the guard; refused windows are
    skipped and reported, never written."""
    one: OneWindow = rollup_hour if period == "hourly" else rollup_day
    rows, done = 0, []
    refused: list[tuple[datetime, guard.Refused]] = []
    for count, window in enumerate(windows, start=1):
        try:
            rows += one(store, write, window, now)
            done.append(window)
        except guard.Refused as refusal:
            refused.append((window, refusal))
        if progress:
            progress(count, len(windows))
    return JobOutcome(tuple(done), rows, skipped=tuple(guard.coalesce(period, refused)))


def run_hourly(store: Store, write: Write[Any], now: datetime, retention: Retention) -> JobOutcome:
    """Scheduled hourly job: the previous closed hour, any missing hour (catch-up) and any
    dirty hour, then every dirty day (late data reaches the day within the hour)."""
    hours = run_windows(store, write, due_hours(store, now), "hourly", now)
    return hours.merge(run_windows(store, write, dirty_days(store, now), "daily", now))


def run_daily(store: Store, write: Write[Any], now: datetime, retention: Retention) -> JobOutcome:
    """Scheduled daily job: the previous closed day, missing days and dirty days."""
    return run_windows(store, write, due_days(store, now), "daily", now)
