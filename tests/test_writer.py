"""The ingest writer (``exporter/ingest/writer.py``) through the real app: durations derived
from stored start events at commit, a stalled commit filling the queue (503), and a failing
commit answered alone while the writer keeps running."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from exporter.http.context import WRITER
from tests.backends import both, rows
from tests.conftest import T, make_event
from tests.scrape import domain_samples, samples, scrape
from tests.tools import post, stored_durations


@both
async def test_derived_duration_from_started_event(
    start_app: Any, tmp_path: Path, database_url: str
) -> None:
    client = await start_app()
    await post(client, [
        make_event(event_type="artifact_received", artifact_id="n1", timestamp=T(9, 0)),
        make_event(event_type="transcription_started", artifact_id="n1", timestamp=T(9, 1)),
    ])  # fmt: skip
    await post(client, [
        make_event(event_type="transcription_started", artifact_id="n1", timestamp=T(9, 2)),
        make_event(event_type="transcription_completed", artifact_id="n1", timestamp=T(9, 2, 45)),
        make_event(event_type="artifact_completed", artifact_id="n1", timestamp=T(9, 10)),
    ])  # fmt: skip
    found = rows(
        database_url,
        tmp_path,
        "SELECT event_type, duration_ms, duration_source FROM events WHERE duration_ms IS NOT NULL",
    )
    assert {r["event_type"]: (r["duration_ms"], r["duration_source"]) for r in found} == {
        "transcription_completed": (45000.0, "started_event"),
        "artifact_completed": (600000.0, "received_event"),
    }
    samples = domain_samples(await scrape(client))
    assert samples[("voice_pipeline_end_to_end_duration_seconds_sum", ())] == 600.0
    key = (
        "voice_pipeline_stage_duration_seconds_bucket",
        (("le", "40.97"), ("stage", "transcription")),
    )
    assert samples[key] == 0.0
    key = (
        "voice_pipeline_stage_duration_seconds_bucket",
        (("le", "47.12"), ("stage", "transcription")),
    )
    assert samples[key] == 1.0  # 45 s


@both
async def test_derived_duration_needs_a_start_at_or_before(
    start_app: Any, tmp_path: Path, database_url: str
) -> None:
    client = await start_app()
    await post(client, [
        make_event(event_type="transcription_completed", artifact_id="n2", timestamp=T(9, 0)),
        make_event(event_type="transcription_started", artifact_id="n2", timestamp=T(9, 5)),
    ])  # fmt: skip
    sql = "SELECT event_id FROM events WHERE duration_ms IS NOT NULL"
    assert rows(database_url, tmp_path, sql) == []


async def test_stalled_writer_fills_queue_then_503(start_app: Any, tmp_path: Path) -> None:
    client = await start_app(queue_max_events=5, max_batch=5)
    await post(client, [make_event()])  # database exists
    blocker = sqlite3.connect(tmp_path / "voxmon.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the writer now waits on the lock: stalled
    first = asyncio.create_task(post(client, [make_event() for _ in range(5)]))  # noqa: RUF006 (awaited below)
    writer = client.server.app[WRITER]
    while writer.queued_events < 5:  # the five wait behind the lock: the queue is full
        assert not first.done(), first.result()
        await asyncio.sleep(0)
    response = await client.post("/v1/events", json=[make_event()])
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert (await response.json())["error"]["code"] == "unavailable"
    blocker.execute("ROLLBACK")
    blocker.close()
    status, body = await first
    assert (status, body["accepted"]) == (200, 5)


async def test_writer_survives_a_failing_commit(
    start_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error inside one commit answers that request 500 (JSON, counted: it is
    a voxmon bug, not a storage outage) and the next request commits normally (the writer
    task keeps running)."""
    from exporter.ingest import commit as writer

    client = await start_app()
    real = writer.tally
    calls = {"n": 0}

    def failing_once(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("injected fault")
        return real(*args, **kwargs)

    monkeypatch.setattr(writer, "tally", failing_once)
    response = await client.post("/v1/events", json=[make_event(event_id="f1")])
    assert response.status == 500
    error = (await response.json())["error"]
    assert error["code"] == "commit_failed" and "injected fault" in error["message"]
    status, body = await post(client, [make_event(event_id="f1")])
    assert (status, body["accepted"]) == (200, 1)  # the failed commit stored nothing


@both
async def test_derived_duration_over_max_is_unset_and_counted(
    start_app: Any, tmp_path: Path, database_url: str
) -> None:
    client = await start_app(max_duration_days=1)
    await post(client, [
        make_event(event_id="r", event_type="artifact_received", timestamp="2026-11-27T04:00:00Z"),
        make_event(event_id="s", event_type="transcription_started", timestamp=T(9, 0)),
    ])  # fmt: skip
    status, body = await post(client, [
        make_event(event_id="c", event_type="artifact_completed", timestamp=T(10, 0)),
        make_event(event_id="t", event_type="transcription_completed", timestamp=T(9, 30)),
    ])  # fmt: skip
    assert (status, body["accepted"], body["warnings"]) == (200, 2, [])  # derived: no warning
    assert stored_durations(tmp_path, database_url) == {
        "r": (None, None),
        "s": (None, None),
        "c": (None, "over_max"),  # 30 h > 1 day
        "t": (1_800_000.0, "started_event"),
    }
    text = await scrape(client)
    assert samples(text, "voxmon_derived_durations_discarded_total") == {
        ("voxmon_derived_durations_discarded_total", (("source", "received_event"),)): 1.0
    }
    found = domain_samples(text)
    assert ("voice_pipeline_end_to_end_duration_seconds_count", ()) not in found
    transcription = (("stage", "transcription"),)
    assert found[("voice_pipeline_stage_duration_seconds_sum", transcription)] == 1800.0
