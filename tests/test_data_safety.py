"""Data safety end to end: a daemon SIGKILLed while it stores a rollup, late events at the
edge of the retention horizon, and ingest beside a cleanup that pruned more than the
daemon's own horizon."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from exporter.model import Event
from exporter.timestamps import datetime_to_ms
from rollup import cleanup, jobs
from rollup.codec import decode_parts
from rollup.windows import Retention
from tests.backends import both, store_for
from tests.conftest import make_event
from tests.tools import FakeClock, batch, daemon, free_port, open_store, wait_ready

pytestmark = both

HOUR = timedelta(hours=1)


def stored_parts(db: Path, period: str, start: datetime, database_url: str = "") -> Any:
    conn = store_for(database_url, db.parent)
    try:
        start_ms = datetime_to_ms(start)
        rows = conn.snapshots.snapshot_rows(period, start_ms, start_ms + 1, "")
        return decode_parts(rows[0].parts) if rows else None
    finally:
        conn.close()


def dirty(db: Path, period: str) -> set[int]:
    store = open_store(db)
    try:
        return store.snapshots.dirty_starts(period)
    finally:
        store.close()


def seed_hour(db: Path, hour: datetime) -> None:
    """An hour rolled up with 10 notes."""
    conn = open_store(db)
    notes = [Event(f"early-{i}", "artifact_received", datetime_to_ms(hour) + i, artifact_id=f"n{i}")
             for i in range(10)]  # fmt: skip
    conn.write(lambda c: c.events.insert(notes, 0))
    jobs.run_hourly(conn, jobs.direct_write(conn), hour + 2 * HOUR, Retention())
    conn.close()


def add_late_events(db: Path, hour: datetime, count: int) -> None:
    """``count`` more events for the hour, marked dirty, as the ingest writer does for
    late events (written beside the running daemon, on its own connection)."""
    conn = open_store(db)
    more = [Event(f"late-{i}", "artifact_received", datetime_to_ms(hour) + 1000 + i % 3_000_000,
                  artifact_id=f"m{i}") for i in range(count)]  # fmt: skip
    conn.write(lambda c: c.events.insert(more, 0))
    conn.write(lambda c: c.snapshots.mark_dirty("hourly", [datetime_to_ms(hour)]))
    conn.close()


async def catch_up_done(db: Path) -> None:
    """The daemon's start-up catch-up has recorded its hourly run."""
    for _ in range(400):
        with sqlite3.connect(db) as conn:
            if conn.execute("SELECT 1 FROM job_runs WHERE job = 'rollup-hourly'").fetchone():
                return
        await asyncio.sleep(0.05)
    raise AssertionError("the start-up catch-up did not run")


async def test_sigkill_while_a_rollup_is_stored_leaves_the_hour_repairable(
    tmp_path: Path,
) -> None:
    """The daemon is killed while its rollup of a dirty hour waits to write (another
    process holds the write lock): the old snapshot and the dirty mark survive, and the
    restarted daemon repairs the hour. Before the fix the mark was cleared first and the
    hour stayed wrong for good. The late events arrive after the start-up catch-up has
    run, so the only rollup of them is the one killed; the restart's catch-up repairs it."""
    db, port = tmp_path / "voxmon.db", free_port()
    base = f"http://127.0.0.1:{port}"
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - 3 * HOUR
    seed_hour(db, hour)
    with daemon(db, port) as process:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, base)
            await catch_up_done(db)
            add_late_events(db, hour, 20_000)
            blocker = sqlite3.connect(db, isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")  # the daemon's next write waits for this
            run = asyncio.create_task(session.post(f"{base}/v1/rollups/rollup-hourly/run"))
            await asyncio.sleep(1.5)  # reading 20,000 events takes well under a second
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
            run.cancel()
            blocker.execute("ROLLBACK")
            blocker.close()
    assert stored_parts(db, "hourly", hour).artifacts_received == 10
    assert dirty(db, "hourly") == {datetime_to_ms(hour)}
    with daemon(db, port):
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, base)
            for _ in range(200):  # the start-up catch-up runs the dirty hour
                if not dirty(db, "hourly"):
                    break
                await asyncio.sleep(0.05)
    assert stored_parts(db, "hourly", hour).artifacts_received == 20_010
    assert dirty(db, "hourly") == set()


async def test_late_event_at_the_retention_edge_reaches_its_hour_and_day(
    start_app: Any, clock: FakeClock, tmp_path: Path, database_url: str
) -> None:
    """An event 47 h 50 min old (accepted: inside the 48 h horizon) in the hour that
    straddles the horizon, after a cleanup ran: the next hourly run puts it in its hourly
    and daily snapshots."""
    now = datetime(2026, 12, 1, 10, 20, tzinfo=UTC)
    clock.set(now - timedelta(hours=49))
    client = await start_app()
    first = make_event(timestamp=(now - timedelta(hours=50)).isoformat(), artifact_id="a0")
    assert (await client.post("/v1/events", json=[first])).status == 200
    clock.set(now)
    for job in ("rollup-hourly", "rollup-daily", "cleanup-events"):
        assert (await client.post(f"/v1/rollups/{job}/run")).status == 200
    late_at = now - timedelta(hours=47, minutes=50)  # 2026-11-29T10:30
    late = make_event(timestamp=late_at.isoformat(), artifact_id="a1")
    response = await client.post("/v1/events", json=[late])
    assert (await response.json())["accepted"] == 1
    run = await (await client.post("/v1/rollups/rollup-hourly/run")).json()
    assert run["windows"].startswith("2026-11-29T10:00:00+00:00")
    db = tmp_path / "voxmon.db"
    assert (
        stored_parts(db, "hourly", late_at.replace(minute=0), database_url).artifacts_received == 1
    )
    day = stored_parts(db, "daily", late_at.replace(hour=0, minute=0), database_url)
    assert day.artifacts_received == 2  # with the first note, 50 h old, same day


async def test_events_in_hours_a_cleanup_pruned_are_refused_not_forgotten(
    start_app: Any, clock: FakeClock, tmp_path: Path, database_url: str
) -> None:
    """A CLI cleanup run with a 1 h retention beside a daemon whose horizon is 48 h: an
    event for a pruned hour is refused naming ``timestamp``, never accepted into an hour
    that can no longer be rolled up."""
    now = datetime(2026, 11, 28, 10, 20, tzinfo=UTC)
    clock.set(now)
    client = await start_app()
    old = make_event(timestamp="2026-11-28T07:10:00Z", artifact_id="a0")
    assert (await client.post("/v1/events", json=[old])).status == 200
    conn = store_for(database_url, tmp_path)
    cleanup.cleanup_events(conn, jobs.direct_write(conn), now, Retention(events=HOUR))
    conn.close()
    fresh = make_event(timestamp="2026-11-28T09:30:00Z", artifact_id="a2")
    pruned = make_event(timestamp="2026-11-28T08:59:59Z", artifact_id="a1")
    response = await client.post("/v1/events", json=[fresh, pruned])
    body = await response.json()
    assert response.status == 200
    assert (body["accepted"], body["duplicates"]) == (1, 0)
    assert [(r["index"], r["event_id"]) for r in body["rejected"]] == [(1, pruned["event_id"])]
    error = body["rejected"][0]["errors"][0]
    assert error["field"] == "timestamp"
    assert error["message"].startswith("timestamp is before 2026-11-28T09:00:00.000Z")
    metrics = await (await client.get("/metrics")).text()
    assert 'voxmon_ingest_rejected_total{reason="too_old"} 1.0' in metrics
    only = await client.post("/v1/events", json=[make_event(timestamp="2026-11-28T08:00:00Z")])
    assert only.status == 400


async def test_cleanup_rolls_up_a_dirty_hour_before_pruning_its_events(
    start_app: Any, clock: FakeClock, tmp_path: Path, database_url: str
) -> None:
    """A late event accepted 47 h 50 min after its time (inside the 48 h horizon) marks its
    hour dirty at 04:45; the weekly cleanup-events fires at 05:00, before the 05:30 hourly
    run, and prunes that hour. The cleanup must first bring the hour (and so its day) up to
    date: otherwise the event was acknowledged and never reaches a snapshot."""
    hour = datetime(2026, 12, 4, 4, 0, tzinfo=UTC)  # a Friday
    clock.set(hour + timedelta(minutes=20))
    client = await start_app()
    early = make_event(timestamp=(hour + timedelta(minutes=10)).isoformat(), artifact_id="a0")
    assert (await client.post("/v1/events", json=[early])).status == 200
    clock.set(hour + timedelta(hours=1, minutes=30))
    assert (await client.post("/v1/rollups/rollup-hourly/run")).status == 200
    clock.set(hour + timedelta(days=1, hours=1, minutes=30))
    assert (await client.post("/v1/rollups/rollup-daily/run")).status == 200
    clock.set(hour + timedelta(hours=48, minutes=45))
    late = make_event(timestamp=(hour + timedelta(minutes=55)).isoformat(), artifact_id="a1")
    assert (await (await client.post("/v1/events", json=[late])).json())["accepted"] == 1
    clock.set(hour + timedelta(hours=49))  # Sunday 05:00, cleanup-events' own fire time
    assert (await client.post("/v1/rollups/cleanup-events/run")).status == 200
    clock.set(hour + timedelta(hours=49, minutes=30))
    assert (await client.post("/v1/rollups/rollup-hourly/run")).status == 200
    db = tmp_path / "voxmon.db"
    assert stored_parts(db, "hourly", hour, database_url).artifacts_received == 2
    assert stored_parts(db, "daily", hour.replace(hour=0), database_url).artifacts_received == 2


async def test_events_in_days_whose_hourly_rows_were_pruned_are_refused(
    start_app: Any, clock: FakeClock, tmp_path: Path, database_url: str
) -> None:
    """A CLI cleanup with a 1-day hourly retention beside a daemon with the 48 h horizon:
    an event 38 h old (its hour's raw events are still complete) lands in a day whose
    hourly rows are pruned, so its hour can never be rolled up again; it is refused naming
    ``timestamp``, not acknowledged and forgotten."""
    now = datetime(2026, 11, 28, 10, 20, tzinfo=UTC)
    clock.set(now)
    client = await start_app()
    old = make_event(timestamp="2026-11-26T20:10:00Z", artifact_id="a0")
    assert (await client.post("/v1/events", json=[old])).status == 200
    conn = store_for(database_url, tmp_path)
    jobs.run_hourly(conn, jobs.direct_write(conn), now, Retention())
    cleanup.cleanup_snapshots(
        conn, jobs.direct_write(conn), now, Retention(hourly=timedelta(days=1))
    )
    conn.close()
    late = make_event(timestamp="2026-11-26T20:30:00Z", artifact_id="a1")
    response = await client.post("/v1/events", json=[late])
    body = await response.json()
    assert (response.status, body["accepted"]) == (400, 0)
    error = body["rejected"][0]["errors"][0]
    assert error["field"] == "timestamp"
    assert error["message"].startswith("timestamp is before 2026-11-27T00:00:00.000Z")


async def test_a_removed_wal_loses_nothing_acknowledged_when_the_daemon_is_killed(
    tmp_path: Path,
) -> None:
    """``voxmon.db-wal`` looks like a temporary file, and removing it under a running daemon
    used to change nothing visible: posts kept answering 200 and /readyz 200, and after a
    SIGKILL every event committed since the last checkpoint was gone (1,800 of 4,500 in a
    manual run). Now the next commit moves everything committed into the database file and
    refuses further writes (503) until a restart."""
    db, port = tmp_path / "voxmon.db", free_port()
    base = f"http://127.0.0.1:{port}"
    acked: list[str] = []
    with daemon(db, port) as process:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, base)

            async def post(number: int) -> int:
                events = batch(0, number)
                async with session.post(f"{base}/v1/events", json=events) as response:
                    if response.status == 200:
                        acked.extend(event["event_id"] for event in events)
                    return response.status

            assert [await post(n) for n in range(10)] == [200] * 10
            Path(f"{db}-wal").unlink()
            Path(f"{db}-shm").unlink()
            assert [await post(n) for n in range(10, 13)] == [503] * 3
            async with session.get(f"{base}/readyz") as response:
                assert response.status == 503
                assert f"{db}-wal was removed" in (await response.json())["error"]["message"]
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    with sqlite3.connect(db) as conn:
        stored = {row[0] for row in conn.execute("SELECT event_id FROM events")}
    assert len(acked) == 400 and set(acked) <= stored
