"""End to end: notes that take days (a human confirms the drafts) keep their end-to-end
time through HTTP ingest, storage, the hourly snapshot and ``/metrics``."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from exporter.timestamps import datetime_to_ms
from rollup import jobs
from rollup.codec import decode_parts
from tests.backends import both, sqlite_only
from tests.conftest import T0, make_event
from tests.scrape import domain_samples, scrape
from tests.tools import FakeClock, open_store

pytestmark = both

HOUR_MS = 3_600_000
TWO_DAYS_MS = 172_800_000


def rfc3339(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


async def post(client: Any, events: list[dict[str, Any]]) -> dict[str, Any]:
    response = await client.post("/v1/events", json=events)
    body: dict[str, Any] = await response.json()
    assert (response.status, body["accepted"], body["rejected"]) == (200, len(events), [])
    assert body["warnings"] == []
    return body


@sqlite_only
async def test_long_notes_count_in_end_to_end_snapshot_and_metrics(
    start_app: Any, clock: FakeClock, tmp_path: Path
) -> None:
    client = await start_app()
    # received now, completed 30 h later: both inside the 48 h late-event horizon when sent
    await post(client, [make_event(event_id="recv", artifact_id="slow", timestamp=rfc3339(T0))])
    clock.advance(timedelta(hours=30))
    done = clock.now()
    await post(client, [
        make_event(event_id="done-30h", event_type="artifact_completed", artifact_id="slow",
                   timestamp=rfc3339(done)),
        make_event(event_id="done-2d", event_type="artifact_completed", artifact_id="two-days",
                   timestamp=rfc3339(done + timedelta(minutes=1)), duration_ms=TWO_DAYS_MS),
    ])  # fmt: skip

    with sqlite3.connect(tmp_path / "voxmon.db") as conn:
        stored = dict(
            conn.execute(
                "SELECT event_id, duration_ms || ' ' || duration_source FROM events"
                " WHERE event_type = 'artifact_completed'"
            ).fetchall()
        )
    assert stored == {
        "done-30h": f"{30.0 * HOUR_MS} received_event",
        "done-2d": f"{float(TWO_DAYS_MS)} duration_ms",
    }

    found = domain_samples(await scrape(client))
    e2e = "voice_pipeline_end_to_end_duration_seconds"
    assert found[(f"{e2e}_count", ())] == 2.0
    assert found[(f"{e2e}_sum", ())] == 30 * 3600 + 48 * 3600
    # the log-spaced bounds reach 30 days: both notes land in finite buckets
    assert found[(f"{e2e}_bucket", (("le", "94890.0"),))] == 0.0
    assert found[(f"{e2e}_bucket", (("le", "109100.0"),))] == 1.0  # 30 h
    assert found[(f"{e2e}_bucket", (("le", "166000.0"),))] == 1.0
    assert found[(f"{e2e}_bucket", (("le", "190900.0"),))] == 2.0  # 48 h
    assert found[(f"{e2e}_bucket", (("le", "+Inf"),))] == 2.0
    completed = (("org_id", "org-a"), ("outcome", "completed"))
    assert found[("voice_pipeline_artifacts_total", completed)] == 2.0

    hour = datetime(2026, 11, 29, 16, tzinfo=UTC)
    assert done == hour  # T0 (10:00) + 30 h
    clock.advance(timedelta(hours=1, minutes=5))  # the hour is closed
    conn = open_store(tmp_path / "voxmon.db")
    try:
        jobs.rollup_hour(conn, jobs.direct_write(conn), hour, clock.now())
        for scope in ("", "org-a"):
            start = datetime_to_ms(hour)
            (row,) = conn.snapshots.snapshot_rows("hourly", start, start + HOUR_MS, scope)
            parts = decode_parts(row.parts)
            assert parts.artifacts_completed == 2
            digest = parts.end_to_end
            assert (digest.count, digest.sum) == (2, 30.0 * HOUR_MS + TWO_DAYS_MS)
            assert (digest.min, digest.max) == (30.0 * HOUR_MS, float(TWO_DAYS_MS))
    finally:
        conn.close()
