"""Rollup and cleanup jobs on a real SQLite file: idempotence, quiet hours, late data,
catch-up, retention boundaries and batched deletes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from exporter.model import Event, Metadata
from exporter.storage import events as event_rows
from exporter.storage import snapshots as snap
from exporter.storage.database import connect, in_transaction
from exporter.timestamps import datetime_to_ms
from rollup import jobs
from rollup.codec import decode_parts, encode_parts
from rollup.parts import SnapshotParts, derived
from rollup.retention import Retention

NOW = datetime(2026, 11, 28, 12, 40, tzinfo=UTC)
RETENTION = Retention()


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = connect(tmp_path / "voxmon.db")
    yield connection
    connection.close()


def add(conn: sqlite3.Connection, *events: Event) -> None:
    in_transaction(conn, lambda c: event_rows.insert(c, events, 0))


def event(n: int, event_type: str, when: datetime, **fields: Any) -> Event:
    return Event(f"e{n}", event_type, datetime_to_ms(when), artifact_id=f"a{n}", **fields)


def all_snapshots(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT * FROM snapshots ORDER BY period, period_start_ms, scope"
    ).fetchall()


def parts_of(
    conn: sqlite3.Connection, period: str, start: datetime, scope: str = ""
) -> SnapshotParts:
    rows = snap.snapshot_rows(conn, period, datetime_to_ms(start), datetime_to_ms(start) + 1, scope)
    assert len(rows) == 1
    return decode_parts(rows[0].parts)


H10 = datetime(2026, 11, 28, 10, tzinfo=UTC)


def test_jobs_rollup_hour_twice_gives_identical_rows(conn: sqlite3.Connection) -> None:
    add(
        conn,
        event(1, "artifact_received", H10 + timedelta(minutes=5), org_id="o1"),
        event(2, "transcription_completed", H10 + timedelta(minutes=6), org_id="o1",
              stage="transcription", duration_ms=1200.0,
              metadata=Metadata(confidence=0.5, ai_cost_usd=0.25)),
        event(3, "artifact_failed", H10 + timedelta(minutes=59, seconds=59)),
        event(4, "artifact_received", H10 + timedelta(hours=1)),  # next hour
    )  # fmt: skip
    write = jobs.direct_write(conn)
    assert jobs.rollup_hour(conn, write, H10) == 2
    first = all_snapshots(conn)
    assert jobs.rollup_hour(conn, write, H10) == 2
    assert all_snapshots(conn) == first
    platform = parts_of(conn, "hourly", H10)
    assert (platform.artifacts_received, platform.artifacts_failed) == (1, 1)
    assert platform.stages["transcription"].succeeded == 1
    assert platform.stages["transcription"].latency.count == 1
    assert platform.transcript_confidence_count == 1
    assert platform.ai_cost_usd == 0.25
    org = parts_of(conn, "hourly", H10, "o1")
    assert (org.artifacts_received, org.artifacts_failed) == (1, 0)
    assert derived(platform)["failure_rate"] == 1.0


def test_jobs_quiet_hour_has_zero_platform_row(conn: sqlite3.Connection) -> None:
    assert jobs.rollup_hour(conn, jobs.direct_write(conn), H10) == 1
    parts = parts_of(conn, "hourly", H10)
    assert parts == SnapshotParts()
    assert derived(parts)["end_to_end_latency_p95_ms"] == 0.0
    assert derived(parts)["failure_rate"] == 0.0


def test_jobs_every_day_has_a_daily_row(conn: sqlite3.Connection) -> None:
    write = jobs.direct_write(conn)
    outcome = jobs.run_daily(conn, write, NOW, RETENTION)
    days = [d.date().isoformat() for d in outcome.windows]
    # closed days starting inside hourly retention (since 2026-11-21T12:40)
    assert days == [f"2026-11-{d}" for d in range(22, 28)]
    assert outcome.rows == 6
    assert all(parts_of(conn, "daily", d) == SnapshotParts() for d in outcome.windows)
    assert jobs.run_daily(conn, write, NOW, RETENTION).windows == ()


def test_jobs_late_event_changes_hour_and_day_at_next_run(tmp_path: Path) -> None:
    """The dirty mark the ingest writer sets for a late event is set here by hand (the
    reference test sends late events through the real HTTP path)."""
    conn = connect(tmp_path / "voxmon.db")
    write = jobs.direct_write(conn)
    day = datetime(2026, 11, 27, tzinfo=UTC)
    add(conn, event(1, "artifact_received", day + timedelta(hours=3)))
    jobs.run_hourly(conn, write, NOW, RETENTION)
    jobs.run_daily(conn, write, NOW, RETENTION)
    assert parts_of(conn, "daily", day).artifacts_received == 1
    late = event(2, "artifact_received", day + timedelta(hours=3, minutes=30))
    add(conn, late)
    in_transaction(
        conn, lambda c: snap.mark_dirty(c, "hourly", [datetime_to_ms(day) + 3 * 3_600_000])
    )
    assert jobs.run_hourly(conn, write, NOW, RETENTION).windows == (day + timedelta(hours=3),)
    assert parts_of(conn, "hourly", day + timedelta(hours=3)).artifacts_received == 2
    assert jobs.run_daily(conn, write, NOW, RETENTION).windows == (day,)
    assert parts_of(conn, "daily", day).artifacts_received == 2
    assert jobs.run_hourly(conn, write, NOW, RETENTION).windows == ()
    conn.close()


def test_jobs_catch_up_after_downtime(conn: sqlite3.Connection) -> None:
    """Daemon down 10:10-15:50: the first run at 15:50 aggregates 10:00..14:00."""
    write = jobs.direct_write(conn)
    before = datetime(2026, 11, 28, 10, 10, tzinfo=UTC)
    jobs.run_hourly(conn, write, before, RETENTION)  # up to 09:00 done before going down
    outcome = jobs.run_hourly(conn, write, datetime(2026, 11, 28, 15, 50, tzinfo=UTC), RETENTION)
    assert [w.hour for w in outcome.windows] == [10, 11, 12, 13, 14]


def put_snapshot(conn: sqlite3.Connection, period: str, start: datetime) -> None:
    row = snap.SnapshotRow(period, datetime_to_ms(start), "", 0, 0, 0, 0.0,
                           encode_parts(SnapshotParts()))  # fmt: skip
    in_transaction(conn, lambda c: snap.replace_snapshots(c, period, row.period_start_ms, [row]))


@pytest.mark.parametrize(
    ("period", "keep"),
    [("hourly", timedelta(days=7)), ("daily", timedelta(days=90))],
)
def test_jobs_snapshot_retention_is_strict(
    conn: sqlite3.Connection, period: str, keep: timedelta
) -> None:
    second = timedelta(seconds=1)
    ages = {"older": keep + second, "exact": keep, "younger": keep - second}
    for age in ages.values():
        put_snapshot(conn, period, NOW - age)
    dry = jobs.cleanup_snapshots(conn, jobs.direct_write(conn), NOW, RETENTION, dry_run=True)
    assert dry.deleted[period] == 1
    assert len(all_snapshots(conn)) == 3
    done = jobs.cleanup_snapshots(conn, jobs.direct_write(conn), NOW, RETENTION)
    assert done.deleted == {"hourly": 0, "daily": 0} | {period: 1}
    kept = {row[1] for row in all_snapshots(conn)}
    assert kept == {datetime_to_ms(NOW - ages["exact"]), datetime_to_ms(NOW - ages["younger"])}


def test_jobs_event_retention_is_strict_and_batched(
    conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    cutoff = NOW - timedelta(hours=48)
    old = [event(i, "artifact_received", cutoff - timedelta(seconds=1)) for i in range(25)]
    add(conn, *old, event(100, "artifact_received", cutoff),
        event(101, "artifact_received", cutoff + timedelta(seconds=1)))  # fmt: skip
    monkeypatch.setattr(jobs, "DELETE_BATCH", 10)
    batches: list[int] = []

    def counting_write(fn: Any) -> Any:
        result = in_transaction(conn, fn)
        batches.append(result if isinstance(result, int) else -1)
        return result

    dry = jobs.cleanup_events(conn, counting_write, NOW, RETENTION, dry_run=True)
    assert dry.deleted == {"events": 25, "artifacts": 0}
    outcome = jobs.cleanup_events(conn, counting_write, NOW, RETENTION)
    assert outcome.deleted == {"events": 25, "artifacts": 0}
    assert batches[:3] == [10, 10, 5]
    left = {row[0] for row in conn.execute("SELECT event_id FROM events")}
    assert left == {"e100", "e101"}
