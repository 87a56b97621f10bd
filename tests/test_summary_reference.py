"""``GET /v1/metrics/summary`` over several days against a brute-force recomputation from
the stored events: four days of notes go through the real ingest path as the fake clock
moves, the real jobs roll them up, and the merged row (daily snapshots for whole days,
hourly ones at the edges) must equal plain loops over the raw rows of the range."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from exporter.timestamps import datetime_to_ms, parse_timestamp
from tests.reference import exact_quantile, note_events, reference, system_events
from tests.tools import FakeClock

FIRST = datetime(2026, 11, 29, 6, tzinfo=UTC)  # after the fake clock's start
LAST = datetime(2026, 12, 3, 2, tzinfo=UTC)
NOW = datetime(2026, 12, 3, 12, 10, tzinfo=UTC)
START, END = "2026-11-29T09:00:00Z", "2026-12-02T15:00:00Z"
CHUNK = timedelta(hours=6)


def four_days(seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    hours = int((LAST - FIRST).total_seconds() // 3600)
    events: list[dict[str, Any]] = []
    for n in range(480):
        events += note_events(rng, n, FIRST + timedelta(seconds=rng.uniform(0, hours * 3600)))
    return events + system_events(rng, FIRST, hours)


async def ingest_as_time_passes(client: Any, clock: FakeClock, events: list[dict[str, Any]]) -> int:
    """Post each 6-hour chunk just after it ends (never too late, never in the future) and
    roll up; returns how many events were accepted."""
    accepted = 0
    chunk_start = FIRST
    while chunk_start < LAST + timedelta(hours=2):
        lo, hi = datetime_to_ms(chunk_start), datetime_to_ms(chunk_start + CHUNK)
        chunk = [e for e in events if lo <= parse_timestamp(e["timestamp"]) < hi]
        clock.set(chunk_start + CHUNK + timedelta(minutes=10))
        for i in range(0, len(chunk), 500):
            response = await client.post("/v1/events", json=chunk[i : i + 500])
            assert response.status == 200, await response.text()
            accepted += (await response.json())["accepted"]
        assert (await client.post("/v1/rollups/rollup-hourly/run")).status == 200
        chunk_start += CHUNK
    return accepted


def flat(parts: dict[str, Any]) -> dict[str, float]:
    """The summary's parts under the reference's names."""
    out = {k: v for k, v in parts.items() if isinstance(v, int | float)}
    for stage, sp in parts["stages"].items():
        for name in ("started", "succeeded", "failed", "ai_cost_usd"):
            out[f"{stage}.{name}"] = sp[name]
    for stage in ("ingestion", "confirmation"):
        out[f"cost.{stage}"] = parts["stage_ai_cost_usd"][stage]
    return out


def assert_row_matches(row: dict[str, Any], ref: dict[str, Any], where: str) -> None:
    got = flat(row["parts"])
    assert set(got) == set(ref["counts"]), where
    for name, value in ref["counts"].items():
        assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-9), f"{where} {name}"
    digests = {s: sp["latency"] for s, sp in row["parts"]["stages"].items()}
    digests["end_to_end"] = row["parts"]["end_to_end"]
    for name, values in ref["latencies"].items():
        assert digests[name]["count"] == len(values) > 0, f"{where} {name}"
        assert digests[name]["sum_ms"] == pytest.approx(sum(values), rel=1e-9)
        for label, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            exact = exact_quantile(values, q)
            assert row["derived"][f"{name}_latency_{label}_ms"] == pytest.approx(exact, rel=0.01), (
                f"{where} {name} {label}"
            )
    counts = ref["counts"]
    done, failed = counts["artifacts_completed"], counts["artifacts_failed"]
    assert row["derived"]["failure_rate"] == pytest.approx(failed / (done + failed))
    assert row["derived"]["avg_cost_per_artifact_usd"] == pytest.approx(
        counts["ai_cost_usd"] / counts["artifacts_received"]
    )


def raw_rows(db: Path, org_id: str | None) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    lo, hi = parse_timestamp(START), parse_timestamp(END)
    rows = conn.execute("SELECT * FROM events WHERE ts_ms >= ? AND ts_ms < ?", (lo, hi))
    found = [r for r in rows if org_id is None or r["org_id"] == org_id]
    conn.close()
    return found


async def test_summary_over_four_days_equals_brute_force_reference(
    start_app: Any, clock: FakeClock, tmp_path: Path
) -> None:
    clock.set(FIRST)
    client = await start_app()
    events = four_days(seed=20261124)
    assert await ingest_as_time_passes(client, clock, events) == len(events)
    clock.set(NOW)
    for job in ("rollup-hourly", "rollup-daily"):
        assert (await client.post(f"/v1/rollups/{job}/run")).status == 200
    for org_id in (None, "org-a", "org-d"):
        params = {"start": START, "end": END} | ({"org_id": org_id} if org_id else {})
        response = await client.get("/v1/metrics/summary", params=params)
        assert response.status == 200, await response.text()
        body = await response.json()
        assert body["windows"] == {"daily": 2, "hourly": 30}  # 30 Nov and 1 Dec whole
        assert body["not_rolled_up"] == []
        assert (body["row"]["period_start"], body["row"]["period_end"]) == (
            "2026-11-29T09:00:00.000Z",
            "2026-12-02T15:00:00.000Z",
        )
        ref = reference(raw_rows(tmp_path / "voxmon.db", org_id))
        assert ref["counts"]["artifacts_received"] > 50
        assert_row_matches(body["row"], ref, org_id or "platform")


async def test_summary_states_the_hours_not_rolled_up(start_app: Any, clock: FakeClock) -> None:
    clock.set(datetime(2026, 11, 28, 12, 10, tzinfo=UTC))
    client = await start_app()
    event = {"event_id": "e1", "event_type": "artifact_received", "artifact_id": "n1",
             "timestamp": "2026-11-28T09:15:00Z", "org_id": "org-a"}  # fmt: skip
    assert (await client.post("/v1/events", json=event)).status == 200
    params = {"start": "2026-11-28T00:00:00Z", "end": "2026-11-28T12:10:00Z"}
    body = await (await client.get("/v1/metrics/summary", params=params)).json()
    assert body["not_rolled_up"] == [
        {"start": "2026-11-28T09:00:00.000Z", "end": "2026-11-28T12:00:00.000Z",
         "reason": "not_rolled_up"},
        {"start": "2026-11-28T12:00:00.000Z", "end": "2026-11-28T13:00:00.000Z",
         "reason": "open"},
    ]  # fmt: skip
    assert body["row"]["parts"]["artifacts_received"] == 0
    assert (await client.post("/v1/rollups/rollup-hourly/run")).status == 200
    body = await (await client.get("/v1/metrics/summary", params=params)).json()
    assert [g["reason"] for g in body["not_rolled_up"]] == ["open"]
    assert body["row"]["parts"]["artifacts_received"] == 1
    assert body["windows"] == {"daily": 0, "hourly": 3}  # 09:00..12:00; before is empty
    assert body["row"]["period_end"] == "2026-11-28T13:00:00.000Z"


@pytest.mark.parametrize(
    ("params", "field", "fragment"),
    [
        ({"end": "2026-11-28T00:00:00Z"}, "start", "required"),
        ({"start": "2026-11-28T00:00:00Z"}, "end", "required"),
        ({"start": "2026-11-28T01:00:00Z", "end": "2026-11-28T01:00:00Z"}, "start", "before end"),
        ({"start": "2026-11-28T00:00:00Z", "end": "2026-11-28T10:30:00Z"}, "end", "11 hours"),
        ({"start": "1", "end": "253402300799999"}, "end", "9999-12-31T23:00:00.000Z"),
        ({"start": "2026-11-28T00:00:00Z", "end": "soon"}, "end", "RFC 3339"),
        ({"start": "0", "end": "1", "period": "daily"}, "period", "unknown parameter"),
    ],
)
async def test_summary_rejects_bad_parameters(
    start_app: Any, params: dict[str, str], field: str, fragment: str
) -> None:
    client = await start_app(max_range_rows=10)
    response = await client.get("/v1/metrics/summary", params=params)
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["details"][0]["field"] == field
    assert fragment in error["message"]
