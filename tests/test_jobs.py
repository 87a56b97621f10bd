"""Rollup and cleanup jobs on a real SQLite file: idempotence, quiet hours, late data,
catch-up, retention boundaries, batched deletes and the rollup guard."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from exporter.model import Event, Metadata
from exporter.records import NONE, SnapshotRow
from exporter.storage.sqlite.store import SqliteStore
from exporter.timestamps import datetime_to_ms
from rollup import cleanup, jobs
from rollup.codec import decode_parts, encode_parts
from rollup.parts import SnapshotParts, derived
from rollup.windows import Retention, windows_between
from tests.tools import open_store

NOW = datetime(2026, 11, 28, 12, 40, tzinfo=UTC)
RETENTION = Retention()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    connection = open_store(tmp_path / "voxmon.db")
    yield connection
    connection.close()


def add(store: SqliteStore, *events: Event) -> None:
    store.write(lambda c: c.events.insert(events, 0))


def event(n: int, event_type: str, when: datetime, **fields: Any) -> Event:
    return Event(f"e{n}", event_type, datetime_to_ms(when), artifact_id=f"a{n}", **fields)


def all_snapshots(store: SqliteStore) -> list[tuple[Any, ...]]:
    return store.connection.execute(
        "SELECT * FROM snapshots ORDER BY period, period_start_ms, scope"
    ).fetchall()


def parts_of(store: SqliteStore, period: str, start: datetime, scope: str = "") -> SnapshotParts:
    rows = store.snapshots.snapshot_rows(
        period, datetime_to_ms(start), datetime_to_ms(start) + 1, scope
    )
    assert len(rows) == 1
    return decode_parts(rows[0].parts)


H10 = datetime(2026, 11, 28, 10, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_jobs_rollup_hour_twice_gives_identical_rows(store: SqliteStore) -> None:
    add(
        store,
        event(1, "artifact_received", H10 + timedelta(minutes=5), org_id="o1"),
        event(2, "transcription_completed", H10 + timedelta(minutes=6), org_id="o1",
              stage="transcription", duration_ms=1200.0,
              metadata=Metadata(confidence=0.5, ai_cost_usd=0.25)),
        event(3, "artifact_failed", H10 + timedelta(minutes=59, seconds=59)),
        event(4, "artifact_received", H10 + timedelta(hours=1)),  # next hour
    )  # fmt: skip
    write = jobs.direct_write(store)
    assert jobs.rollup_hour(store, write, H10, NOW) == 2
    first = all_snapshots(store)
    assert jobs.rollup_hour(store, write, H10, NOW) == 2
    assert all_snapshots(store) == first
    platform = parts_of(store, "hourly", H10)
    assert (platform.artifacts_received, platform.artifacts_failed) == (1, 1)
    assert platform.stages["transcription"].succeeded == 1
    assert platform.stages["transcription"].latency.count == 1
    assert platform.transcript_confidence_count == 1
    assert platform.ai_cost_usd == 0.25
    org = parts_of(store, "hourly", H10, "o1")
    assert (org.artifacts_received, org.artifacts_failed) == (1, 0)
    assert derived(platform)["failure_rate"] == 1.0


def test_jobs_quiet_hour_after_the_first_event_has_zero_platform_row(
    store: SqliteStore,
) -> None:
    add(store, event(1, "artifact_received", H10 - timedelta(minutes=30)))
    assert jobs.rollup_hour(store, jobs.direct_write(store), H10, NOW) == 1
    parts = parts_of(store, "hourly", H10)
    assert parts == SnapshotParts()
    assert derived(parts)["end_to_end_latency_p95_ms"] == 0.0
    assert derived(parts)["failure_rate"] == 0.0


def test_jobs_history_starts_at_the_first_event(store: SqliteStore) -> None:
    """A fresh database writes nothing; after its first event, catch-up covers exactly the
    closed hours from that event's hour, not 47 empty hours before it."""
    write = jobs.direct_write(store)
    assert jobs.run_hourly(store, write, NOW, RETENTION) == jobs.JobOutcome()
    assert jobs.run_daily(store, write, NOW, RETENTION) == jobs.JobOutcome()
    assert all_snapshots(store) == []
    add(store, event(1, "artifact_received", H10 - timedelta(hours=2, minutes=1)))  # 07:59
    outcome = jobs.run_hourly(store, write, NOW, RETENTION)
    assert [w.hour for w in outcome.windows] == [7, 8, 9, 10, 11]


def test_jobs_every_day_since_history_start_has_a_daily_row(store: SqliteStore) -> None:
    add(store, event(1, "artifact_received", datetime(2026, 11, 24, 23, 30, tzinfo=UTC)))
    write = jobs.direct_write(store)
    jobs.run_hourly(store, write, NOW, RETENTION)
    outcome = jobs.run_daily(store, write, NOW, RETENTION)
    assert [d.date().isoformat() for d in outcome.windows] == [
        "2026-11-24", "2026-11-25", "2026-11-26", "2026-11-27",
    ]  # fmt: skip
    assert outcome.rows == 4
    assert parts_of(store, "daily", datetime(2026, 11, 24, tzinfo=UTC)).artifacts_received == 1
    assert parts_of(store, "daily", datetime(2026, 11, 25, tzinfo=UTC)) == SnapshotParts()
    assert jobs.run_daily(store, write, NOW, RETENTION).windows == ()


def test_jobs_late_event_reaches_hour_and_day_at_the_next_hourly_run(tmp_path: Path) -> None:
    """The dirty mark the ingest writer sets for a late event is set here by hand (the
    reference test sends late events through the real HTTP path). The hourly run
    re-aggregates the day too, so it does not wait for the next 01:30."""
    store = open_store(tmp_path / "voxmon.db")
    write = jobs.direct_write(store)
    day = datetime(2026, 11, 27, tzinfo=UTC)
    add(store, event(1, "artifact_received", day + timedelta(hours=3)))
    jobs.run_hourly(store, write, NOW, RETENTION)
    jobs.run_daily(store, write, NOW, RETENTION)
    assert parts_of(store, "daily", day).artifacts_received == 1
    late = event(2, "artifact_received", day + timedelta(hours=3, minutes=30))
    add(store, late)
    store.write(lambda c: c.snapshots.mark_dirty("hourly", [datetime_to_ms(day) + 3 * 3_600_000]))
    outcome = jobs.run_hourly(store, write, NOW, RETENTION)
    assert outcome.windows == (day + timedelta(hours=3), day)
    assert parts_of(store, "hourly", day + timedelta(hours=3)).artifacts_received == 2
    assert parts_of(store, "daily", day).artifacts_received == 2
    assert jobs.run_daily(store, write, NOW, RETENTION).windows == ()
    assert jobs.run_hourly(store, write, NOW, RETENTION).windows == ()
    store.close()


def test_jobs_catch_up_after_downtime(store: SqliteStore) -> None:
    """Daemon down 10:10-15:50: the first run at 15:50 aggregates 10:00..14:00."""
    add(store, event(1, "artifact_received", H10 - timedelta(hours=3)))
    write = jobs.direct_write(store)
    before = datetime(2026, 11, 28, 10, 10, tzinfo=UTC)
    assert [w.hour for w in jobs.run_hourly(store, write, before, RETENTION).windows] == [7, 8, 9]
    outcome = jobs.run_hourly(store, write, datetime(2026, 11, 28, 15, 50, tzinfo=UTC), RETENTION)
    assert [w.hour for w in outcome.windows] == [10, 11, 12, 13, 14]


def put_snapshot(store: SqliteStore, period: str, start: datetime) -> None:
    row = SnapshotRow(period, datetime_to_ms(start), "", 0, 0, 0, 0.0,
                           encode_parts(SnapshotParts()))  # fmt: skip
    store.write(lambda c: c.snapshots.replace_snapshots(period, row.period_start_ms, [row]))


def test_jobs_hourly_snapshots_go_by_whole_days(store: SqliteStore) -> None:
    """Hourly rows are deleted once their whole UTC day is older than hourly retention,
    so the days that remain can always be re-merged; the watermark records it."""
    cut = NOW - timedelta(days=7)  # 2026-11-21T12:40
    day = datetime(2026, 11, 21, tzinfo=UTC)
    for start in (day - HOUR, day, cut - HOUR):
        put_snapshot(store, "hourly", start)
    dry = cleanup.cleanup_snapshots(store, jobs.direct_write(store), NOW, RETENTION, dry_run=True)
    assert dry.deleted == {"hourly": 1, "daily": 0}
    assert store.horizons.load().hourly_from_ms == NONE  # a dry run moves nothing
    done = cleanup.cleanup_snapshots(store, jobs.direct_write(store), NOW, RETENTION)
    assert done.deleted == {"hourly": 1, "daily": 0}
    kept = {row[1] for row in all_snapshots(store)}
    assert kept == {datetime_to_ms(day), datetime_to_ms(cut - HOUR)}
    assert store.horizons.load().hourly_from_ms == datetime_to_ms(day)


def test_jobs_daily_snapshot_retention_is_strict(store: SqliteStore) -> None:
    keep, second = timedelta(days=90), timedelta(seconds=1)
    ages = {"older": keep + second, "exact": keep, "younger": keep - second}
    for age in ages.values():
        put_snapshot(store, "daily", NOW - age)
    done = cleanup.cleanup_snapshots(store, jobs.direct_write(store), NOW, RETENTION)
    assert done.deleted == {"hourly": 0, "daily": 1}
    kept = {row[1] for row in all_snapshots(store)}
    assert kept == {datetime_to_ms(NOW - ages["exact"]), datetime_to_ms(NOW - ages["younger"])}
    assert store.horizons.load().daily_from_ms == datetime_to_ms(NOW - keep)


def test_jobs_events_go_by_whole_hours_in_batches(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events are deleted once their whole hour is older than event retention (12:00 on
    the 26th for NOW 12:40 on the 28th); every batch raises the watermark with it."""
    limit = datetime(2026, 11, 26, 12, tzinfo=UTC)
    second = timedelta(seconds=1)
    old = [event(i, "artifact_received", limit - second) for i in range(25)]
    add(store, *old, event(100, "artifact_received", limit),
        event(101, "artifact_received", NOW - timedelta(hours=48) - second))  # fmt: skip
    monkeypatch.setattr(cleanup, "DELETE_BATCH", 10)
    batches: list[tuple[int, int]] = []

    def counting_write(fn: Any) -> Any:
        result = store.write(fn)
        watermark = store.horizons.load().events_from_ms
        batches.append((result if isinstance(result, int) else -1, watermark))
        return result

    dry = cleanup.cleanup_events(store, counting_write, NOW, RETENTION, dry_run=True)
    assert dry.deleted == {"events": 25, "artifacts": 0}
    outcome = cleanup.cleanup_events(store, counting_write, NOW, RETENTION)
    assert outcome.deleted == {"events": 25, "artifacts": 0}
    deletes = [batch for batch in batches if batch[0] >= 0][:3]  # after the rollup writes
    assert deletes == [(10, datetime_to_ms(limit))] * 2 + [(5, datetime_to_ms(limit))]
    left = {row[0] for row in store.connection.execute("SELECT event_id FROM events")}
    assert left == {"e100", "e101"}  # 48 h + 1 s old, but its hour is not over yet


def test_jobs_backfill_after_event_retention_keeps_the_hour_and_the_day(
    store: SqliteStore,
) -> None:
    """The backfill that once replaced history with zeros: roll up, prune the raw events
    (a 1 h retention simulates 48 h passing), then ask for the hour and the day again."""
    day = datetime(2026, 11, 27, tzinfo=UTC)
    add(store, *(event(i, "artifact_received", day + timedelta(hours=5, minutes=i))
                for i in range(12)))  # fmt: skip
    write = jobs.direct_write(store)
    jobs.run_hourly(store, write, NOW, RETENTION)
    jobs.run_daily(store, write, NOW, RETENTION)
    before = all_snapshots(store)
    assert parts_of(store, "hourly", day + 5 * HOUR).artifacts_received == 12
    cleanup.cleanup_events(store, write, NOW, Retention(events=HOUR))
    assert store.connection.execute("SELECT COUNT(*) FROM events").fetchone() == (0,)
    hour = jobs.run_windows(store, write, [day + 5 * HOUR], "hourly", NOW)
    assert hour.windows == ()
    assert [(s.reason, s.count) for s in hour.skipped] == [("events_pruned", 1)]
    assert "pruned by event retention" in hour.skipped[0].describe()
    whole_day = jobs.run_windows(store, write, [day], "daily", NOW)
    assert whole_day.windows == (day,)  # re-merged from the intact hourly rows
    assert all_snapshots(store) == before
    # the scheduled runs with the default settings do not rewrite anything either
    assert jobs.run_hourly(store, write, NOW, RETENTION).windows == ()
    assert all_snapshots(store) == before


def test_jobs_backfill_after_hourly_retention_keeps_the_day(store: SqliteStore) -> None:
    day = datetime(2026, 11, 18, tzinfo=UTC)
    now = day + timedelta(days=3)
    add(store, event(1, "artifact_received", day + 3 * HOUR))
    write = jobs.direct_write(store)
    jobs.run_hourly(store, write, now, RETENTION)
    jobs.run_daily(store, write, now, RETENTION)
    before = [row for row in all_snapshots(store) if row[0] == "daily"]
    cleanup.cleanup_events(store, write, NOW, RETENTION)
    cleanup.cleanup_snapshots(store, write, NOW, RETENTION)
    outcome = jobs.run_windows(store, write, [day], "daily", NOW)
    assert [s.reason for s in outcome.skipped] == ["hourly_pruned"]
    assert [row for row in all_snapshots(store) if row[0] == "daily"] == before
    scheduled = jobs.run_daily(store, write, NOW, RETENTION)
    assert day not in scheduled.windows
    assert [row for row in all_snapshots(store) if row[0] == "daily"][:3] == before


@pytest.mark.parametrize(
    ("window", "reason"),
    [
        (datetime(2026, 11, 28, 12, tzinfo=UTC), "open"),  # NOW is 12:40
        (datetime(2027, 11, 28, 12, tzinfo=UTC), "future"),
        (datetime(2020, 1, 1, tzinfo=UTC), "before_history"),
    ],
)
def test_jobs_open_future_and_prehistoric_windows_are_not_written(
    store: SqliteStore, window: datetime, reason: str
) -> None:
    add(store, event(1, "artifact_received", H10))
    outcome = jobs.run_windows(store, jobs.direct_write(store), [window], "hourly", NOW)
    assert (outcome.windows, [s.reason for s in outcome.skipped]) == ((), [reason])
    assert all_snapshots(store) == []


def test_jobs_six_year_backfill_is_reported_as_one_range(store: SqliteStore) -> None:
    add(store, event(1, "artifact_received", H10 + timedelta(minutes=5)))
    windows = windows_between(datetime(2020, 1, 1, tzinfo=UTC), NOW, "hourly")
    allowed, skipped = jobs.plan_windows(store, "hourly", windows, NOW)
    assert len(windows) == 60_565
    assert allowed == [H10, H10 + HOUR]
    assert [(s.reason, s.count) for s in skipped] == [("before_history", 60_562), ("open", 1)]
    assert (
        skipped[0]
        .describe()
        .startswith(
            "skipped hourly 2020-01-01T00:00:00.000Z..2026-11-28T09:00:00.000Z (60562 windows):"
            " before the first event (history starts 2026-11-28T10:00:00.000Z)"
        )
    )


def test_jobs_a_mark_set_while_the_hour_is_aggregated_survives(
    store: SqliteStore,
) -> None:
    """Only the run that read a mark can clear it: an event committed between the
    rollup's read and its write keeps the hour dirty for the next run."""
    add(store, event(1, "artifact_received", H10))
    write = jobs.direct_write(store)
    jobs.run_hourly(store, write, NOW, RETENTION)
    store.write(lambda c: c.snapshots.mark_dirty("hourly", [datetime_to_ms(H10)]))

    def racing_write(fn: Any) -> Any:
        add(store, event(2, "artifact_received", H10 + timedelta(minutes=1)))
        store.write(lambda c: c.snapshots.mark_dirty("hourly", [datetime_to_ms(H10)]))
        return write(fn)

    jobs.rollup_hour(store, racing_write, H10, NOW)
    assert parts_of(store, "hourly", H10).artifacts_received == 1
    assert store.snapshots.dirty_starts("hourly") == {datetime_to_ms(H10)}
    assert jobs.run_hourly(store, write, NOW, RETENTION).windows == (H10,)
    assert parts_of(store, "hourly", H10).artifacts_received == 2
    assert store.snapshots.dirty_starts("hourly") == set()


@pytest.mark.parametrize("fail_at", [1, 2])
def test_jobs_a_failed_write_leaves_the_hour_dirty(store: SqliteStore, fail_at: int) -> None:
    """A crash (here: an injected fault at the n-th write of the run) between reading the
    hour and writing it leaves the old snapshot and the mark, so the next run repairs the
    hour; no write of the run may clear the mark before the new rows are stored."""
    add(store, event(1, "artifact_received", H10))
    write = jobs.direct_write(store)
    jobs.run_hourly(store, write, NOW, RETENTION)
    add(store, event(2, "artifact_received", H10 + timedelta(minutes=1)))
    store.write(lambda c: c.snapshots.mark_dirty("hourly", [datetime_to_ms(H10)]))
    writes = {"n": 0}

    def failing_write(fn: Any) -> Any:
        writes["n"] += 1
        if writes["n"] == fail_at:
            raise sqlite3.OperationalError("disk I/O error")
        return write(fn)

    with contextlib.suppress(sqlite3.OperationalError):
        jobs.rollup_hour(store, failing_write, H10, NOW)
    stored = parts_of(store, "hourly", H10).artifacts_received
    assert stored == 2 or store.snapshots.dirty_starts("hourly") == {datetime_to_ms(H10)}
    jobs.run_hourly(store, write, NOW, RETENTION)
    assert parts_of(store, "hourly", H10).artifacts_received == 2
    assert store.snapshots.dirty_starts("hourly") == set()


def test_jobs_cleanup_snapshots_brings_a_dirty_hour_into_its_day_before_pruning(
    store: SqliteStore,
) -> None:
    """Event retention longer than hourly retention (200 h against 7 days) accepts a late
    event into a day whose hourly rows the weekly cleanup is about to prune: the hour is
    dirty, the day is not yet. The cleanup re-aggregates the hour and then the day first,
    or the event would never reach a snapshot."""
    day = datetime(2026, 11, 20, tzinfo=UTC)  # pruned at NOW: before 2026-11-21
    write = jobs.direct_write(store)
    add(store, event(1, "artifact_received", day + 3 * HOUR))
    jobs.run_hourly(store, write, day + timedelta(days=1, hours=2), RETENTION)
    jobs.run_daily(store, write, day + timedelta(days=1, hours=2), RETENTION)
    late = event(2, "artifact_received", day + 3 * HOUR + timedelta(minutes=5))
    add(store, late)
    store.write(lambda c: c.snapshots.mark_dirty("hourly", [datetime_to_ms(day + 3 * HOUR)]))
    cleanup.cleanup_snapshots(store, write, NOW, RETENTION)
    assert parts_of(store, "daily", day).artifacts_received == 2
    assert store.snapshots.dirty_starts("hourly") == set()
