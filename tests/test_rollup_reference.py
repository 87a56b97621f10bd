"""Hourly and daily snapshots against a brute-force recomputation from the stored events.

A randomized stream (7 orgs plus no-org events, every event type, failures, disambiguation,
missing durations, duplicates, late events) goes through the real ingest path; the real
jobs aggregate it; every part is then recomputed by plain loops over the raw rows.
"""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path
from typing import Any

from exporter.catalog import EVENT_TYPES
from exporter.timestamps import datetime_to_ms, parse_timestamp
from rollup import jobs
from rollup.windows import Retention
from tests.backends import both, store_for
from tests.reference import NOW, SUCCESS, check_all_snapshots, note_events, system_events
from tests.tools import FakeClock


def stream(seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(on-time events, late events): late ones belong to hours aggregated before they come."""
    rng = random.Random(seed)
    start = NOW - timedelta(hours=30)
    events: list[dict[str, Any]] = []
    for n in range(700):
        events += note_events(rng, n, start + timedelta(seconds=rng.uniform(0, 28 * 3600)))
    events += system_events(rng, start, 28)
    rng.shuffle(events)
    events += rng.sample(events, 150)  # duplicate deliveries
    split = int(len(events) * 0.85)
    return events[:split], events[split:]


SUCCESS["entity_resolution_alt"] = "entity_needs_disambiguation"


@both
async def test_rollup_snapshots_equal_brute_force_reference(
    start_app: Any, clock: FakeClock, tmp_path: Path, database_url: str
) -> None:
    clock.set(NOW)
    client = await start_app()
    on_time, late = stream(seed=20261128)
    assert {e["event_type"] for e in on_time + late} == set(EVENT_TYPES)
    for i in range(0, len(on_time), 500):
        response = await client.post("/v1/events", json=on_time[i : i + 500])
        assert response.status == 200
    conn = store_for(database_url, tmp_path)
    write = jobs.direct_write(conn)
    retention = Retention()
    first = jobs.run_hourly(conn, write, NOW, retention)
    oldest = min(parse_timestamp(e["timestamp"]) for e in on_time)
    history = oldest - oldest % 3_600_000
    closed = (datetime_to_ms(NOW) - datetime_to_ms(NOW) % 3_600_000 - history) // 3_600_000
    assert len(first.windows) == closed == 30  # every closed hour since the first event
    # the days: 2026-11-27 closed; catch-up reaches back over hourly retention (7 days)
    daily = jobs.run_daily(conn, write, NOW, retention)
    assert [d.date().isoformat() for d in daily.windows][-1] == "2026-11-27"
    hourly_rows, daily_rows = check_all_snapshots(database_url, tmp_path)
    assert hourly_rows > 48 and daily_rows > 1

    response = await client.post("/v1/events", json=late)  # late and duplicate deliveries
    body = await response.json()
    assert body["duplicates"] > 0 and body["accepted"] > 0
    again = jobs.run_hourly(conn, write, NOW, retention)
    assert 0 < len(again.windows) < 48  # only the hours the late events dirtied
    jobs.run_daily(conn, write, NOW, retention)
    check_all_snapshots(database_url, tmp_path)
    conn.close()
