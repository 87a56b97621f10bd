"""Demo traffic generator: the pure simulation, a two-minute run (on a fake clock) through
the client into a real voxmon whose hourly snapshots match the configured failure rates,
and ``voxmon demo`` end to end against the daemon as a subprocess."""

from __future__ import annotations

import asyncio
import math
import random
import sqlite3
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from voxmon_client import Emitter

from exporter.catalog import EVENT_TYPES, PROCESSING_STAGES
from exporter.demo.runner import run
from exporter.demo.shape import DemoConfig
from exporter.demo.traffic import Simulation
from exporter.timestamps import datetime_to_ms
from rollup import jobs
from rollup.codec import decode_parts
from rollup.parts import SnapshotParts
from tests.conftest import T0
from tests.tools import FakeClock, daemon, free_port, open_store, wait_ready_port

HOUR_MS = 3_600_000


def test_simulation_is_reproducible_time_ordered_and_uses_the_catalog() -> None:
    first = list(Simulation(DemoConfig(rate=5), random.Random(3)).emissions(300))
    again = list(Simulation(DemoConfig(rate=5), random.Random(3)).emissions(300))
    assert first == again
    times = [e.at for e in first]
    assert times == sorted(times) and times[-1] < 300
    kinds = Counter(e.event_type for e in first)
    assert set(kinds) <= set(EVENT_TYPES)
    assert len(kinds) == 23  # all but status changes, circuit breakers and budget_exceeded
    ids = [e.fields["event_id"] for e in first]
    assert len(ids) == len(set(ids))
    late = {e.fields.get("artifact_id") for e in first if e.lag_s}
    assert 0 < len(late) < 0.05 * kinds["artifact_received"]
    assert all(120 <= e.lag_s <= 600 for e in first if e.lag_s)


def test_simulation_notes_follow_the_stage_order() -> None:
    events: dict[str, list[str]] = {}
    for e in Simulation(DemoConfig(rate=2), random.Random(9)).emissions(600):
        if "artifact_id" in e.fields:
            events.setdefault(e.fields["artifact_id"], []).append(e.event_type)
    completed = [types for types in events.values() if "artifact_completed" in types]
    assert len(completed) > 900
    for types in completed:
        starts = [t for t in types if t.endswith("_started")]
        assert starts[0] in ("transcription_started", "claims_extraction_started")
        assert starts[-1] == "draft_generation_started"
        assert types[0] == "artifact_received"


def test_simulation_failure_override_applies_per_stage() -> None:
    config = DemoConfig().with_failures({"entity_resolution": 1.0, "transcription": 0.0})
    sim = Simulation(config, random.Random(4))
    list(sim.emissions(120))
    assert sim.counts["failed:transcription"] == 0
    assert sim.counts["succeeded:entity_resolution"] == 0
    assert sim.counts["failed:entity_resolution"] > 100


async def test_demo_two_minutes_snapshots_match_configured_failure_rates(
    start_app: Any, tmp_path: Path
) -> None:
    """Two simulated minutes at 5 notes/s, paced by a fake clock (no real waiting),
    emitted through the client into a real voxmon, rolled up by the hourly job."""
    client = await start_app()
    config, clock = DemoConfig(rate=5), FakeClock(T0)
    sim = Simulation(config, random.Random(11))
    emitter = Emitter(str(client.server.make_url("")), capacity=100_000, batch_size=1000)
    await asyncio.to_thread(run, sim, emitter.emit, clock, lambda s: clock.advance(s) or False, 120)
    stats = await asyncio.to_thread(emitter.close, 30)
    assert (clock.now() - T0).total_seconds() == pytest.approx(120)  # the run lasts --duration
    assert stats.accepted == sim.counts["events"]
    assert stats.duplicates == sim.counts["duplicates"] > 0
    assert (stats.rejected, stats.dropped, stats.abandoned) == (0, 0, 0)

    db = tmp_path / "voxmon.db"
    conn = open_store(db)
    try:
        hours = [T0.replace(hour=9), T0]  # late notes are stamped up to 10 minutes early
        for hour in hours:
            jobs.rollup_hour(conn, jobs.direct_write(conn), hour, T0 + timedelta(hours=1))
        start = datetime_to_ms(hours[0])
        rows = conn.snapshots.snapshot_rows("hourly", start, start + 2 * HOUR_MS, "")
        (events,) = conn.connection.execute("SELECT COUNT(*) FROM events").fetchone()
    finally:
        conn.close()
    assert len(rows) == 2 and events == sim.counts["events"]
    parts = SnapshotParts.merge_all(decode_parts(row.parts) for row in rows)
    assert parts.artifacts_received == sim.counts["notes"] >= 500
    for stage in PROCESSING_STAGES:
        got, p = parts.stages[stage], config.profiles[stage].failure_p
        assert got.started == sim.counts[f"started:{stage}"]
        assert got.failed == sim.counts[f"failed:{stage}"]
        n = got.succeeded + got.failed
        assert n >= 400
        assert abs(got.failure_rate - p) <= 4 * math.sqrt(p * (1 - p) / n), stage


@pytest.mark.slow
def test_voxmon_demo_command_sends_the_seeded_traffic(tmp_path: Path) -> None:
    db, port = tmp_path / "voxmon.db", free_port()
    args = ["--url", f"http://127.0.0.1:{port}", "--duration", "2", "--rate", "20", "--seed", "5"]
    with daemon(db, port):
        wait_ready_port(port)
        done = subprocess.run(
            [sys.executable, "-m", "exporter", "demo", *args],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "demo done" in done.stderr
    expected = Simulation(DemoConfig(rate=20), random.Random(5))
    list(expected.emissions(2))
    assert expected.in_flight > 0  # the notes the demo finishes when it stops
    list(expected.drain())
    with sqlite3.connect(db) as conn:
        (events,) = conn.execute("SELECT COUNT(*) FROM events").fetchone()
        statuses = dict(conn.execute("SELECT status, COUNT(*) FROM artifacts GROUP BY 1"))
    assert events == expected.counts["events"] > 30
    assert statuses == {
        "completed": expected.counts["finished:artifact_completed"],
        "failed": expected.counts["finished:artifact_failed"],
    }
    assert sum(statuses.values()) == expected.counts["notes"]
