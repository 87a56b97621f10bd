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

import pytest

from exporter.catalog import EVENT_TYPES
from exporter.timestamps import datetime_to_ms, parse_timestamp
from rollup import jobs
from rollup.codec import decode_parts
from rollup.parts import SnapshotParts, derived
from rollup.windows import Retention
from tests.backends import both, rows, store_for
from tests.reference import (
    NOW,
    SUCCESS,
    exact_quantile,
    note_events,
    reference,
    system_events,
)
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


# ---- the brute-force reference -------------------------------------------------------------

SUCCESS["entity_resolution_alt"] = "entity_needs_disambiguation"


def assert_matches(parts: SnapshotParts, ref: dict[str, Any], where: str) -> None:
    counts, lats = ref["counts"], ref["latencies"]
    got: dict[str, Any] = {
        name: getattr(parts, name) for name in counts if "." not in name and hasattr(parts, name)
    }
    for stage, sp in parts.stages.items():
        got |= {f"{stage}.started": sp.started, f"{stage}.succeeded": sp.succeeded,
                f"{stage}.failed": sp.failed, f"{stage}.ai_cost_usd": sp.ai_cost_usd}  # fmt: skip
    got["cost.ingestion"] = parts.stage_ai_cost_usd["ingestion"]
    got["cost.confirmation"] = parts.stage_ai_cost_usd["confirmation"]
    assert set(got) == set(counts), where
    for name, value in counts.items():
        assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-9), f"{where} {name}"
    fields = derived(parts)
    digests = {**{s: sp.latency for s, sp in parts.stages.items()}, "end_to_end": parts.end_to_end}
    for name, values in lats.items():
        digest = digests[name]
        assert digest.count == len(values), f"{where} {name} count"
        assert digest.sum == pytest.approx(sum(values), rel=1e-9), f"{where} {name} sum"
        prefix = f"{name}_latency"
        avg = sum(values) / len(values) if values else 0.0
        assert fields[f"{prefix}_avg_ms"] == pytest.approx(avg, rel=1e-9), f"{where} {name}"
        for label, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            exact = exact_quantile(values, q)
            assert fields[f"{prefix}_{label}_ms"] == pytest.approx(exact, rel=0.01, abs=1e-9), (
                f"{where} {name} {label}"
            )
    done, failed = counts["artifacts_completed"], counts["artifacts_failed"]
    assert fields["failure_rate"] == (failed / (done + failed) if done + failed else 0.0)
    entities = counts["entity_count_sum"]
    auto = counts["auto_resolved_sum"]
    assert fields["auto_resolution_rate"] == (auto / entities if entities else 0.0)
    received = counts["artifacts_received"]
    assert fields["avg_cost_per_artifact_usd"] == pytest.approx(
        counts["ai_cost_usd"] / received if received else 0.0, rel=1e-9
    )


def check_all_snapshots(database_url: str, tmp_path: Path) -> tuple[int, int]:
    """Compare every hourly and daily snapshot with the reference; returns rows checked."""
    events = rows(database_url, tmp_path, "SELECT * FROM events")
    checked = {"hourly": 0, "daily": 0}
    for period, size in (("hourly", 3_600_000), ("daily", 86_400_000)):
        snaps = rows(
            database_url,
            tmp_path,
            "SELECT period_start_ms, scope, parts FROM snapshots WHERE period = ?",
            period,
        )
        windows = {s["period_start_ms"] for s in snaps}
        for start in windows:
            inside = [e for e in events if start <= e["ts_ms"] < start + size]
            scopes = {s["scope"]: s["parts"] for s in snaps if s["period_start_ms"] == start}
            expected_scopes = {""} | {e["org_id"] for e in inside if e["org_id"]}
            assert set(scopes) == expected_scopes, (period, start)
            for scope, blob in scopes.items():
                mine = [e for e in inside if not scope or e["org_id"] == scope]
                assert_matches(decode_parts(blob), reference(mine), f"{period} {start} {scope!r}")
                checked[period] += 1
    return checked["hourly"], checked["daily"]


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
