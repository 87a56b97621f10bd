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

from exporter.storage import artifacts as artifact_rows
from exporter.storage import events as event_rows
from exporter.storage import snapshots as snap
from exporter.storage.database import in_transaction, read_transaction
from exporter.timestamps import datetime_to_ms
from rollup.aggregate import build_parts
from rollup.codec import decode_parts, encode_parts
from rollup.digest import GAMMA
from rollup.parts import SnapshotParts
from rollup.retention import Retention, closed_days, closed_hours, cutoff

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
    """What one run did: the windows it wrote (or would delete from) and row counts."""

    windows: tuple[datetime, ...] = ()
    rows: int = 0
    deleted: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        if not self.windows:
            return "-"
        first, last = self.windows[0], self.windows[-1]
        span = first.isoformat() if first == last else f"{first.isoformat()}..{last.isoformat()}"
        return f"{span} ({len(self.windows)})"


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


def rollup_hour(conn: sqlite3.Connection, write: Write[Any], hour: datetime) -> int:
    """(Re)write the hourly snapshots of ``[hour, hour + 1h)``: a platform row always and
    one row per org with events. The dirty mark is cleared before reading, so an event
    committed meanwhile marks the hour again. Marks the hour's day dirty if it has a
    daily snapshot. Returns rows written."""
    start, end = datetime_to_ms(hour), datetime_to_ms(hour + HOUR)
    write(lambda c: snap.clear_dirty(c, "hourly", start))
    with read_transaction(conn):
        groups = snap.group_rows(conn, start, end)
        latencies = snap.latency_rows(conn, start, end, INV_LN_GAMMA)
    parts = build_parts(groups, latencies)
    rows = [_row("hourly", hour, scope, p) for scope, p in sorted(parts.items())]
    day = datetime_to_ms(hour.replace(hour=0))

    def store(c: sqlite3.Connection) -> None:
        snap.replace_snapshots(c, "hourly", start, rows)
        if snap.has_snapshot(c, "daily", day):
            snap.mark_dirty(c, "daily", [day])

    write(store)
    return len(rows)


def rollup_day(conn: sqlite3.Connection, write: Write[Any], day: datetime) -> int:
    """(Re)write the daily snapshots of ``[day, day + 1d)`` by merging that day's hourly
    rows per scope; the platform row is written even for a day with no hourly rows."""
    start, end = datetime_to_ms(day), datetime_to_ms(day + DAY)
    write(lambda c: snap.clear_dirty(c, "daily", start))
    by_scope: dict[str, list[SnapshotParts]] = {"": []}
    for row in snap.snapshot_rows(conn, "hourly", start, end):
        by_scope.setdefault(row.scope, []).append(decode_parts(row.parts))
    merged = {scope: SnapshotParts.merge_all(parts) for scope, parts in by_scope.items()}
    rows = [_row("daily", day, scope, p) for scope, p in sorted(merged.items())]
    write(lambda c: snap.replace_snapshots(c, "daily", start, rows))
    return len(rows)


def due_hours(conn: sqlite3.Connection, now: datetime, retention: Retention) -> list[datetime]:
    """Closed hours inside event retention that lack a snapshot or are dirty, ascending."""
    since = cutoff(now, retention.events)
    return _due(conn, "hourly", closed_hours(now, since), since)


def due_days(conn: sqlite3.Connection, now: datetime, retention: Retention) -> list[datetime]:
    """Closed UTC days inside hourly retention that lack a snapshot or are dirty."""
    since = cutoff(now, retention.hourly)
    return _due(conn, "daily", closed_days(now, since), since)


def _due(
    conn: sqlite3.Connection, period: str, closed: Iterable[datetime], since: datetime
) -> list[datetime]:
    have = snap.platform_starts(conn, period, datetime_to_ms(since))
    dirty = snap.dirty_starts(conn, period)
    return [w for w in closed if datetime_to_ms(w) not in have or datetime_to_ms(w) in dirty]


Progress = Callable[[int, int], None]


def run_windows(
    conn: sqlite3.Connection,
    write: Write[Any],
    windows: list[datetime],
    one: Callable[[sqlite3.Connection, Write[Any], datetime], int],
    progress: Progress | None = None,
) -> JobOutcome:
    """Run ``one`` (``rollup_hour`` or ``rollup_day``) over ``windows`` in order."""
    rows = 0
    for done, window in enumerate(windows, start=1):
        rows += one(conn, write, window)
        if progress:
            progress(done, len(windows))
    return JobOutcome(tuple(windows), rows)


def run_hourly(
    conn: sqlite3.Connection, write: Write[Any], now: datetime, retention: Retention
) -> JobOutcome:
    """Scheduled hourly job: the previous closed hour, any missing hour (catch-up) and any
    dirty hour inside event retention."""
    return run_windows(conn, write, due_hours(conn, now, retention), rollup_hour)


def run_daily(
    conn: sqlite3.Connection, write: Write[Any], now: datetime, retention: Retention
) -> JobOutcome:
    """Scheduled daily job: the previous closed day, missing days and dirty days."""
    return run_windows(conn, write, due_days(conn, now, retention), rollup_day)


def cleanup_snapshots(
    conn: sqlite3.Connection,
    write: Write[Any],
    now: datetime,
    retention: Retention,
    dry_run: bool = False,
) -> JobOutcome:
    """Delete hourly snapshots starting before ``now - hourly retention`` and daily ones
    before ``now - daily retention`` (strict), in batches of ``DELETE_BATCH``."""
    deleted = {}
    for period, keep in (("hourly", retention.hourly), ("daily", retention.daily)):
        limit_ms = datetime_to_ms(cutoff(now, keep))
        if dry_run:
            deleted[period] = snap.count_snapshots_before(conn, period, limit_ms)
        else:
            deleted[period] = _batched(write, _snapshot_deleter(period, limit_ms))
    return JobOutcome(deleted=deleted)


def _snapshot_deleter(period: str, limit_ms: int) -> Callable[[sqlite3.Connection], int]:
    return lambda c: snap.delete_snapshots_before(c, period, limit_ms, DELETE_BATCH)


def cleanup_events(
    conn: sqlite3.Connection,
    write: Write[Any],
    now: datetime,
    retention: Retention,
    dry_run: bool = False,
) -> JobOutcome:
    """Delete events older than event retention (strict) and their bookkeeping (dirty marks
    of windows that can no longer be re-aggregated), in batches of ``DELETE_BATCH``."""
    limit_ms = datetime_to_ms(cutoff(now, retention.events))
    if dry_run:
        return JobOutcome(
            deleted={
                "events": event_rows.count_before(conn, limit_ms),
                "artifacts": artifact_rows.count_before(conn, limit_ms),
            }
        )
    events = _batched(write, lambda c: event_rows.delete_before(c, limit_ms, DELETE_BATCH))
    notes = _batched(write, lambda c: artifact_rows.delete_before(c, limit_ms, DELETE_BATCH))
    write(lambda c: snap.delete_dirty_before(c, limit_ms))
    return JobOutcome(deleted={"events": events, "artifacts": notes})


def _batched(write: Write[int], delete: Callable[[sqlite3.Connection], int]) -> int:
    """Repeat ``delete`` as its own short write until a batch comes back short; ingest
    commits queue between batches, so they wait at most one batch."""
    total = 0
    while True:
        n = write(delete)
        total += n
        if n < DELETE_BATCH:
            return total
