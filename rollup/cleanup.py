"""Retention: delete what is older than the settings keep, in short batches, each batch
recording in its own transaction the watermark below which that data is gone; what is about
to be pruned is rolled up first, so nothing accepted is lost."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from exporter.storage.base import Store
from exporter.timestamps import datetime_to_ms
from rollup.jobs import JobOutcome, Write, due_days, due_hours, run_windows
from rollup.windows import Retention, cutoff, day_floor, hour_floor

DELETE_BATCH = 5000


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
    store: Store,
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
        hours = [hour for hour in due_hours(store, now) if datetime_to_ms(hour) < hourly_ms]
        settled = run_windows(store, write, hours, "hourly", now)
        days = [day for day in due_days(store, now) if datetime_to_ms(day) < hourly_ms]
        settled = settled.merge(run_windows(store, write, days, "daily", now))
    deleted = {}
    for period in ("hourly", "daily"):
        limit_ms = datetime_to_ms(limits[period])
        if dry_run:
            deleted[period] = store.snapshots.count_snapshots_before(period, limit_ms)
        else:
            deleted[period] = _batched(write, _snapshot_deleter(period, limit_ms))
    if not dry_run:
        write(lambda c: c.snapshots.delete_dirty_before("daily", hourly_ms))
    return settled.merge(JobOutcome(deleted=deleted))


def _snapshot_deleter(period: str, limit_ms: int) -> Callable[[Store], int]:
    def delete(c: Store) -> int:
        c.horizons.raise_watermark(f"{period}_from", limit_ms)
        return c.snapshots.delete_snapshots_before(period, limit_ms, DELETE_BATCH)

    return delete


def cleanup_events(
    store: Store,
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
                "events": store.events.count_before(limit_ms),
                "artifacts": store.artifacts.count_before(limit_ms),
            }
        )

    def delete_events(c: Store) -> int:
        c.horizons.raise_watermark("events_from", limit_ms)
        return c.events.delete_before(limit_ms, DELETE_BATCH)

    # Late events accepted since the last hourly run (or hours it never reached) must
    # reach their snapshots before their raw events go; afterwards nothing can redo them.
    due = [hour for hour in due_hours(store, now) if datetime_to_ms(hour) < limit_ms]
    settled = run_windows(store, write, due, "hourly", now)
    events = _batched(write, delete_events)
    notes = _batched(write, lambda c: c.artifacts.delete_before(limit_ms, DELETE_BATCH))
    write(lambda c: c.snapshots.delete_dirty_before("hourly", limit_ms))
    return settled.merge(JobOutcome(deleted={"events": events, "artifacts": notes}))


def _batched(write: Write[int], delete: Callable[[Store], int]) -> int:
    """Repeat ``delete`` as its own short write until a batch comes back short; ingest
    commits queue between batches, so they wait at most one batch."""
    total = 0
    while True:
        n = write(delete)
        total += n
        if n < DELETE_BATCH:
            return total
