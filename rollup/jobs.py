"""Rollup and cleanup jobs: storage -> pure aggregation -> storage. Each takes an open
connection and ``now`` (UTC, aware), so the daemon, the CLI and tests run the same code.
Every window is half-open ``[start, end)``; re-running any job leaves identical rows."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from exporter.storage.sqlite import artifacts as artifact_rows
from exporter.storage.sqlite import events as event_rows
from exporter.storage.sqlite import horizons
from exporter.storage.sqlite import snapshots as snap
from exporter.storage.sqlite.database import in_transaction, read_transaction
from exporter.timestamps import datetime_to_ms, format_rfc3339, ms_to_datetime
from rollup import guard
from rollup.aggregate import build_parts
from rollup.codec import decode_parts, encode_parts
from rollup.digest import GAMMA
from rollup.parts import SnapshotParts
from rollup.windows import Retention, closed_days, closed_hours, cutoff, day_floor, hour_floor

T = TypeVar("T")
Write = Callable[[Callable[[sqlite3.Connection], T]], T]
"""Runs ``fn(write_conn)`` in a write transaction and returns its result. In the daemon it
queues behind ingest commits on the writer's connection (one write path); in the CLI it is
the same connection the job reads from (``direct_write``)."""

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
INV_LN_GAMMA = 1.0 / math.log(GAMMA)
DELETE_BATCH = 5000


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """What one run did: the windows it wrote (or would delete from), row counts, and the
    windows the guard refused, coalesced into ranges."""

    windows: tuple[datetime, ...] = ()
    rows: int = 0
    deleted: dict[str, int] = field(default_factory=dict)
    skipped: tuple[guard.Skip, ...] = ()

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


def direct_write(conn: sqlite3.Connection) -> Write[Any]:
    """A ``Write`` on the job's own connection (CLI and tests)."""
    return lambda fn: in_transaction(conn, fn)


def _row(period: str, start: datetime, scope: str, parts: SnapshotParts) -> snap.SnapshotRow:
    return snap.SnapshotRow(
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


def rollup_hour(conn: sqlite3.Connection, write: Write[Any], hour: datetime, now: datetime) -> int:
    """(Re)write the hourly snapshots of ``[hour, hour + 1h)``: a platform row always and
    one row per org with events; raises ``guard.Refused`` for a window the guard refuses.
    The guard, the dirty mark and the events are read in one transaction; the new rows and
    the clearing of that mark are written in one, so a crash between leaves the mark and an
    event committed meanwhile leaves a newer mark. Marks the day dirty if it has a daily
    snapshot. Returns rows written."""
    start, end = datetime_to_ms(hour), datetime_to_ms(hour + HOUR)
    with read_transaction(conn):
        guard.check("hourly", hour, now, horizons.load(conn))
        generation = snap.dirty_generation(conn, "hourly", start)
        groups = snap.group_rows(conn, start, end)
        latencies = snap.latency_rows(conn, start, end, INV_LN_GAMMA)
    parts = build_parts(groups, latencies)
    rows = [_row("hourly", hour, scope, p) for scope, p in sorted(parts.items())]
    day = datetime_to_ms(hour.replace(hour=0))

    def store(c: sqlite3.Connection) -> None:
        guard.check("hourly", hour, now, horizons.load(c))
        snap.replace_snapshots(c, "hourly", start, rows)
        snap.clear_dirty(c, "hourly", start, generation)
        if snap.has_snapshot(c, "daily", day):
            snap.mark_dirty(c, "daily", [day])

    write(store)
    return len(rows)


def rollup_day(conn: sqlite3.Connection, write: Write[Any], day: datetime, now: datetime) -> int:
    """(Re)write the daily snapshots of ``[day, day + 1d)`` by merging that day's hourly
    rows per scope, after bringing its missing or dirty hours up to date; the platform row is
    written even for a quiet day. Raises ``guard.Refused`` when the guard refuses the day
    or an hour of it since the first event has no snapshot and can no longer be computed."""
    start, end = datetime_to_ms(day), datetime_to_ms(day + DAY)
    with read_transaction(conn):
        guard.check("daily", day, now, horizons.load(conn))
        stale = _stale_hours(conn, day, now)
    for hour in stale:
        rollup_hour(conn, write, hour, now)
    with read_transaction(conn):
        found = horizons.load(conn)
        guard.check("daily", day, now, found)
        generation = snap.dirty_generation(conn, "daily", start)
        hourly = snap.snapshot_rows(conn, "hourly", start, end)
    _check_hours_complete(day, hourly, found)
    by_scope: dict[str, list[SnapshotParts]] = {"": []}
    for row in hourly:
        by_scope.setdefault(row.scope, []).append(decode_parts(row.parts))
    merged = {scope: SnapshotParts.merge_all(parts) for scope, parts in by_scope.items()}
    rows = [_row("daily", day, scope, p) for scope, p in sorted(merged.items())]

    def store(c: sqlite3.Connection) -> None:
        guard.check("daily", day, now, horizons.load(c))
        snap.replace_snapshots(c, "daily", start, rows)
        snap.clear_dirty(c, "daily", start, generation)

    write(store)
    return len(rows)


def _stale_hours(conn: sqlite3.Connection, day: datetime, now: datetime) -> list[datetime]:
    """Hours of the day that lack a snapshot or are dirty and that the guard allows."""
    found = horizons.load(conn)
    hours = [day + k * HOUR for k in range(24)]
    have = snap.platform_starts(conn, "hourly", datetime_to_ms(day))
    dirty = snap.dirty_starts(conn, "hourly")
    due = [h for h in hours if datetime_to_ms(h) not in have or datetime_to_ms(h) in dirty]
    return [h for h in due if _allowed("hourly", h, now, found)]


def _check_hours_complete(
    day: datetime, hourly: list[snap.SnapshotRow], found: horizons.Horizons
) -> None:
    history = found.history_start_ms if found.history_start_ms is not None else 0
    have = {row.period_start_ms for row in hourly if row.scope == ""}
    hours = (datetime_to_ms(day + k * HOUR) for k in range(24))
    missing = [h for h in hours if h >= history and h not in have]
    if missing:
        raise guard.Refused(
            "hours_missing",
            f"{len(missing)} hour(s) of the day, from {format_rfc3339(missing[0])}, have no"
            " snapshot and their raw events were pruned",
        )


def _allowed(period: str, window: datetime, now: datetime, found: horizons.Horizons) -> bool:
    try:
        guard.check(period, window, now, found)
    except guard.Refused:
        return False
    return True


def due_hours(conn: sqlite3.Connection, now: datetime) -> list[datetime]:
    """Closed hours since the history start that lack a snapshot or are dirty and whose
    raw events are complete (catch-up), ascending."""
    with read_transaction(conn):
        found = horizons.load(conn)
        if found.history_start_ms is None:
            return []
        since = max(found.history_start_ms, found.events_from_ms, found.hourly_from_ms)
        return _due(conn, "hourly", closed_hours(now, ms_to_datetime(since)), since)


def due_days(conn: sqlite3.Connection, now: datetime) -> list[datetime]:
    """Closed UTC days since the history start's day that lack a snapshot or are dirty
    and whose hourly snapshots were not pruned, ascending."""
    with read_transaction(conn):
        found = horizons.load(conn)
        if found.history_start_ms is None:
            return []
        first_day = datetime_to_ms(day_floor(ms_to_datetime(found.history_start_ms)))
        since = max(first_day, found.hourly_from_ms, found.daily_from_ms)
        return _due(conn, "daily", closed_days(now, ms_to_datetime(since)), since)


def dirty_days(conn: sqlite3.Connection, now: datetime) -> list[datetime]:
    """Closed days marked dirty that the guard allows (the hourly tick re-aggregates them,
    so a day reflects late data within an hour)."""
    with read_transaction(conn):
        found = horizons.load(conn)
        days = [ms_to_datetime(ms) for ms in sorted(snap.dirty_starts(conn, "daily"))]
    return [d for d in days if _allowed("daily", d, now, found)]


def _due(
    conn: sqlite3.Connection, period: str, closed: Iterable[datetime], since_ms: int
) -> list[datetime]:
    have = snap.platform_starts(conn, period, since_ms)
    dirty = snap.dirty_starts(conn, period)
    return [w for w in closed if datetime_to_ms(w) not in have or datetime_to_ms(w) in dirty]


def plan_windows(
    conn: sqlite3.Connection, period: str, windows: list[datetime], now: datetime
) -> tuple[list[datetime], list[guard.Skip]]:
    """Split a backfill's windows into those the guard allows now and the refused ranges
    (an API request refuses up front instead of recording an empty run)."""
    with read_transaction(conn):
        found = horizons.load(conn)
    return guard.split(period, windows, now, found)


def plan_range(
    conn: sqlite3.Connection, period: str, start: datetime, end: datetime, now: datetime
) -> tuple[list[datetime], list[guard.Skip]]:
    """``plan_windows`` for every window starting in ``[floor(start), end)``, however far
    the range reaches into the past or the future (``guard.plan_range``)."""
    with read_transaction(conn):
        found = horizons.load(conn)
    return guard.plan_range(period, start, end, now, found)


Progress = Callable[[int, int], None]
OneWindow = Callable[[sqlite3.Connection, Write[Any], datetime, datetime], int]


def run_windows(
    conn: sqlite3.Connection,
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
            rows += one(conn, write, window, now)
            done.append(window)
        except guard.Refused as refusal:
            refused.append((window, refusal))
        if progress:
            progress(count, len(windows))
    return JobOutcome(tuple(done), rows, skipped=tuple(guard.coalesce(period, refused)))


def run_hourly(
    conn: sqlite3.Connection, write: Write[Any], now: datetime, retention: Retention
) -> JobOutcome:
    """Scheduled hourly job: the previous closed hour, any missing hour (catch-up) and any
    dirty hour, then every dirty day (late data reaches the day within the hour)."""
    hours = run_windows(conn, write, due_hours(conn, now), "hourly", now)
    return hours.merge(run_windows(conn, write, dirty_days(conn, now), "daily", now))


def run_daily(
    conn: sqlite3.Connection, write: Write[Any], now: datetime, retention: Retention
) -> JobOutcome:
    """Scheduled daily job: the previous closed day, missing days and dirty days."""
    return run_windows(conn, write, due_days(conn, now), "daily", now)


def retention_limits(now: datetime, retention: Retention) -> dict[str, datetime]:
    """What retention deletes before, per kind of data. Raw events go by whole hours and
    hourly snapshots by whole days, so that the hours (days) that remain can always be
    recomputed from complete inputs; daily snapshots go at the exact cutoff."""
    return {
        "events": hour_floor(cutoff(now, retention.events)),
        "hourly": day_floor(cutoff(now, retention.hourly)),
        "daily": cutoff(now, retention.daily),
    }


def cleanup_snapshots(
    conn: sqlite3.Connection,
    write: Write[Any],
    now: datetime,
    retention: Retention,
    dry_run: bool = False,
) -> JobOutcome:
    """Delete hourly snapshots starting before the day of ``now - hourly retention`` and
    daily ones before ``now - daily retention`` (strict), in batches of ``DELETE_BATCH``;
    each batch raises the period's watermark in its own transaction. Days about to lose
    their hourly rows are first brought up to date: their dirty or missing hours, then the
    days that are dirty or lack a daily row."""
    limits = retention_limits(now, retention)
    hourly_ms = datetime_to_ms(limits["hourly"])
    settled = JobOutcome()
    if not dry_run:  # days about to lose their hours: their dirty hours, then the days
        hours = [hour for hour in due_hours(conn, now) if datetime_to_ms(hour) < hourly_ms]
        settled = run_windows(conn, write, hours, "hourly", now)
        days = [day for day in due_days(conn, now) if datetime_to_ms(day) < hourly_ms]
        settled = settled.merge(run_windows(conn, write, days, "daily", now))
    deleted = {}
    for period in ("hourly", "daily"):
        limit_ms = datetime_to_ms(limits[period])
        if dry_run:
            deleted[period] = snap.count_snapshots_before(conn, period, limit_ms)
        else:
            deleted[period] = _batched(write, _snapshot_deleter(period, limit_ms))
    if not dry_run:
        write(lambda c: snap.delete_dirty_before(c, "daily", hourly_ms))
    return settled.merge(JobOutcome(deleted=deleted))


def _snapshot_deleter(period: str, limit_ms: int) -> Callable[[sqlite3.Connection], int]:
    def delete(c: sqlite3.Connection) -> int:
        horizons.raise_watermark(c, f"{period}_from", limit_ms)
        return snap.delete_snapshots_before(c, period, limit_ms, DELETE_BATCH)

    return delete


def cleanup_events(
    conn: sqlite3.Connection,
    write: Write[Any],
    now: datetime,
    retention: Retention,
    dry_run: bool = False,
) -> JobOutcome:
    """Delete events of every hour that ended before ``now - event retention``, notes whose
    last event is that old, and dirty marks of hours that can no longer be re-aggregated,
    in batches of ``DELETE_BATCH``; each event batch raises the events watermark in its own
    transaction, so no rollup can rewrite an hour from partial events. Hours about to be
    pruned that are dirty or lack a snapshot are rolled up first."""
    limit_ms = datetime_to_ms(retention_limits(now, retention)["events"])
    if dry_run:
        return JobOutcome(
            deleted={
                "events": event_rows.count_before(conn, limit_ms),
                "artifacts": artifact_rows.count_before(conn, limit_ms),
            }
        )

    def delete_events(c: sqlite3.Connection) -> int:
        horizons.raise_watermark(c, "events_from", limit_ms)
        return event_rows.delete_before(c, limit_ms, DELETE_BATCH)

    # Late events accepted since the last hourly run (or hours it never reached) must
    # reach their snapshots before their raw events go; afterwards nothing can redo them.
    due = [hour for hour in due_hours(conn, now) if datetime_to_ms(hour) < limit_ms]
    settled = run_windows(conn, write, due, "hourly", now)
    events = _batched(write, delete_events)
    notes = _batched(write, lambda c: artifact_rows.delete_before(c, limit_ms, DELETE_BATCH))
    write(lambda c: snap.delete_dirty_before(c, "hourly", limit_ms))
    return settled.merge(JobOutcome(deleted={"events": events, "artifacts": notes}))


def _batched(write: Write[int], delete: Callable[[sqlite3.Connection], int]) -> int:
    """Repeat ``delete`` as its own short write until a batch comes back short; ingest
    commits queue between batches, so they wait at most one batch."""
    total = 0
    while True:
        n = write(delete)
        total += n
        if n < DELETE_BATCH:
            return total
