"""The 60-minute latency window across restarts (rebuilt from the stored events) and the
upgrade from a database holding duration histograms in the old bucket layout (retired as
one counter reset, never mixed with the new layout)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from exporter.live.families import END_TO_END_BUCKETS_S, OLD_DURATION_BUCKETS_S, STAGE_BUCKETS_S
from rollup.digest import LatencyDigest
from tests.backends import both
from tests.conftest import T0, make_event
from tests.scrape import domain_samples, scrape
from tests.tools import FakeClock, database_at


def timed(event_type: str, seconds: float, minutes_ago: float, n: int) -> dict[str, Any]:
    at = (T0 - timedelta(minutes=minutes_ago)).isoformat().replace("+00:00", "Z")
    return make_event(
        event_type=event_type, artifact_id=f"a-{n}", timestamp=at, duration_ms=seconds * 1000
    )


async def latency(client: Any) -> dict[str, Any]:
    body = await (await client.get("/v1/metrics/realtime")).json()
    return {"end_to_end": body["end_to_end_latency_1h"], **body["stage_latency_1h"]}


@both
async def test_window_latency_is_rebuilt_from_events_after_restart(
    start_app: Any, clock: FakeClock
) -> None:
    client = await start_app()
    batch = [timed("transcription_completed", s, 30, n) for n, s in enumerate((1, 2, 3, 40))]
    batch += [timed("artifact_completed", 600, 5, 9), timed("artifact_completed", 900, 65, 10)]
    assert (await client.post("/v1/events", json=batch)).status == 200
    before = await latency(client)
    digest = LatencyDigest.of([1000.0, 2000.0, 3000.0, 40_000.0])  # within 1 % of 2 s, 40 s
    assert before["transcription"] == {
        "count": 4,
        "p50_s": digest.quantile(0.5) / 1000,
        "p95_s": digest.quantile(0.95) / 1000,
        "p99_s": digest.quantile(0.99) / 1000,
    }
    assert round(before["transcription"]["p50_s"], 2) == 2.02
    assert before["end_to_end"] == {"count": 1, "p50_s": 600.0, "p95_s": 600.0, "p99_s": 600.0}
    await client.close()

    restarted = await start_app()
    after = await latency(restarted)
    assert after == before  # the 65-minute-old completion stays outside the window
    clock.advance(timedelta(minutes=31))  # the transcriptions (30 min old) leave the window
    assert (await latency(restarted))["transcription"] is None
    assert (await latency(restarted))["end_to_end"]["count"] == 1


def old_layout_database(path: Path) -> None:
    """A database as the release before issue 14 left it: schema version 7, and stage and
    end-to-end histograms persisted by index into the 16 hand-picked bounds."""
    conn = database_at(path, 7)
    rows = {
        '["events_total","transcription_completed"]': 5.0,
        '["stage_duration_bucket","transcription","6"]': 5.0,  # 2.5-5 s in the old layout
        '["stage_duration_sum","transcription"]': 20.0,
        '["stage_duration_count","transcription"]': 5.0,
        '["e2e_duration_bucket","12"]': 3.0,
        '["e2e_duration_sum"]': 1200.0,
        '["e2e_duration_count"]': 3.0,
    }
    conn.executemany("INSERT INTO live_counters VALUES (?, ?)", rows.items())
    conn.close()


async def test_old_layout_histograms_are_retired_not_mixed(start_app: Any, tmp_path: Path) -> None:
    old_layout_database(tmp_path / "voxmon.db")
    client = await start_app()
    batch = [timed("transcription_completed", 1.5, 1, 1), timed("artifact_completed", 90, 1, 2)]
    assert (await client.post("/v1/events", json=batch)).status == 200
    samples = domain_samples(await scrape(client))
    stage = (("stage", "transcription"),)
    events_total = ("voice_pipeline_events_total", (("event_type", "transcription_completed"),))
    assert samples[events_total] == 6.0  # other counters carry on
    assert samples[("voice_pipeline_stage_duration_seconds_count", stage)] == 1.0
    assert samples[("voice_pipeline_stage_duration_seconds_sum", stage)] == 1.5
    assert samples[("voice_pipeline_end_to_end_duration_seconds_count", ())] == 1.0
    assert samples[("voice_pipeline_end_to_end_duration_seconds_sum", ())] == 90.0
    bounds = {
        name: sorted(float(dict(labels)["le"]) for (n, labels), _ in samples.items() if n == name)
        for name in (
            "voice_pipeline_stage_duration_seconds_bucket",
            "voice_pipeline_end_to_end_duration_seconds_bucket",
        )
    }
    assert bounds == {
        "voice_pipeline_stage_duration_seconds_bucket": [*STAGE_BUCKETS_S, float("inf")],
        "voice_pipeline_end_to_end_duration_seconds_bucket": [*END_TO_END_BUCKETS_S, float("inf")],
    }
    stage_counts = {
        dict(labels)["le"]: value
        for (n, labels), value in samples.items()
        if n == "voice_pipeline_stage_duration_seconds_bucket"
    }
    assert max(stage_counts.values()) == 1.0  # no old-layout count leaks into a new bucket
    assert "2.5" not in stage_counts and 2.5 in OLD_DURATION_BUCKETS_S
