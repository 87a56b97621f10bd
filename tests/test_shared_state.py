"""Replicas on one PostgreSQL database, in one process: each replica's counters are its own
(and continue across its restart), the live windows and organisations are every replica's
(the change journal) and so are the notes in flight (one table), exactly one replica leads
the jobs, and one live replica per instance id. The same with real processes:
tests/test_replicas.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from exporter.errors import StartupError
from exporter.http.context import BACKEND, LIVE, ROLLUPS
from exporter.jobs import ROLLUP_HOURLY
from tests.backends import fresh_database, store_for
from tests.conftest import make_event
from tests.scrape import samples, scrape

EVENTS_TOTAL = "voice_pipeline_events_total"


@pytest.fixture
def database_url() -> Iterator[str]:
    """Every test here runs on PostgreSQL only: replicas need a shared database."""
    with fresh_database() as url:
        yield url


def lifecycle(note: str, org: str, base_s: int = 0) -> list[dict[str, Any]]:
    """One note through transcription, with a duration, in the live window."""

    def at(offset_s: int) -> str:
        return (
            f"2026-11-28T09:{(30 + (base_s + offset_s) // 60):02d}:{(base_s + offset_s) % 60:02d}Z"
        )

    common = {"artifact_id": note, "org_id": org}
    return [
        make_event(event_type="artifact_received", timestamp=at(0), **common),
        make_event(event_type="transcription_started", stage="transcription",
                   timestamp=at(1), **common),
        make_event(event_type="transcription_completed", stage="transcription",
                   timestamp=at(3), duration_ms=2000, **common),
    ]  # fmt: skip


async def ingest(client: Any, events: list[dict[str, Any]]) -> int:
    response = await client.post("/v1/events", json=events)
    assert response.status == 200, await response.text()
    accepted: int = (await response.json())["accepted"]
    return accepted


async def realtime(client: Any) -> dict[str, Any]:
    response = await client.get("/v1/metrics/realtime")
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


async def converged(a: Any, b: Any, timeout_s: float = 5.0) -> dict[str, Any]:
    """The realtime body once both replicas answer the same (the journal is followed every
    half second); fails with both bodies otherwise."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        first, second = await realtime(a), await realtime(b)
        if first == second or asyncio.get_running_loop().time() > deadline:
            assert first == second
            return first
        await asyncio.sleep(0.1)


def events_total(text: str) -> float:
    return sum(v for (name, _), v in samples(text, EVENTS_TOTAL).items() if name == EVENTS_TOTAL)


async def test_replicas_share_the_live_state_and_keep_their_own_counters(
    start_app: Any, database_url: str
) -> None:
    a = await start_app(instance_id="a")
    b = await start_app(instance_id="b")
    first = lifecycle("n1", "org-1")
    assert await ingest(a, first + lifecycle("n2", "org-2", 10)) == 6
    assert await ingest(b, lifecycle("n3", "org-1", 20) + first) == 3  # dedup across replicas
    body = await converged(a, b)
    assert body["artifacts_received_1h"] == 3
    assert body["stage_latency_1h"]["transcription"]["count"] == 3
    for replica in (a, b):  # a shared gauge: the same on every replica
        found = samples(await scrape(replica), "voice_pipeline_inflight_artifacts")
        assert sum(found.values()) == 3
    assert events_total(await scrape(a)) == 6  # each replica exports what it stored
    assert events_total(await scrape(b)) == 3
    await a.close()
    a = await start_app(instance_id="a")  # a restarted replica continues its own series
    assert events_total(await scrape(a)) == 6
    assert await ingest(a, lifecycle("n4", "org-3", 30)) == 3
    assert events_total(await scrape(a)) == 9
    assert (await converged(a, b))["artifacts_received_1h"] == 4


async def test_a_commit_labels_orgs_in_the_order_every_replica_shares(
    start_app: Any, database_url: str
) -> None:
    """B commits right after A, before its follower can have run: the commit reads A's
    journal entry in its own transaction, so org-y is the second org ever seen."""
    a = await start_app(instance_id="a", max_org_series=1)
    b = await start_app(instance_id="b", max_org_series=1)
    assert await ingest(a, [make_event(artifact_id="x1", org_id="org-x")]) == 1
    assert await ingest(b, [make_event(artifact_id="y1", org_id="org-y")]) == 1
    found = samples(await scrape(b), "voice_pipeline_artifacts_total")
    assert found == {
        ("voice_pipeline_artifacts_total",
         (("org_id", "__other__"), ("outcome", "received"))): 1.0,
    }  # fmt: skip
    assert (await converged(a, b))["artifacts_received_1h"] == 2


async def test_one_replica_leads_the_jobs_and_another_takes_over(
    start_app: Any, database_url: str, clock: Any
) -> None:
    a = await start_app(instance_id="a")
    b = await start_app(instance_id="b")
    first, second = a.app[ROLLUPS].scheduler, b.app[ROLLUPS].scheduler
    now = clock.now()
    await first.tick(now)
    await second.tick(now)
    assert ("voxmon_leader", ()) in samples(await scrape(a), "voxmon_leader")
    assert samples(await scrape(a), "voxmon_leader")[("voxmon_leader", ())] == 1.0
    assert samples(await scrape(b), "voxmon_leader")[("voxmon_leader", ())] == 0.0
    runs = await b.app[ROLLUPS].status()
    hourly = next(run for name, _, _, run in runs if name == ROLLUP_HOURLY)
    assert hourly is not None and (hourly.instance, hourly.successes) == ("a", 1)
    await a.close()  # its job-lock session ends with it (the server notices in a moment)
    for _ in range(50):
        await second.tick(now)  # what the scheduler does every LEADER_POLL while it follows
        if b.app[BACKEND].leadership.leading:
            break
        await asyncio.sleep(0.1)
    hourly = next(run for name, _, _, run in await b.app[ROLLUPS].status() if name == ROLLUP_HOURLY)
    assert hourly is not None and (hourly.instance, hourly.successes) == ("b", 2)
    await second.tick(now)  # nothing is due again at the same instant: run once
    hourly = next(run for name, _, _, run in await b.app[ROLLUPS].status() if name == ROLLUP_HOURLY)
    assert hourly is not None and hourly.successes == 2
    assert samples(await scrape(b), "voxmon_leader")[("voxmon_leader", ())] == 1.0


async def test_a_second_live_replica_with_the_same_instance_id_is_refused(
    start_app: Any, database_url: str
) -> None:
    await start_app(instance_id="same")
    with pytest.raises(StartupError, match="instance_id 'same' is in use by another live"):
        await start_app(instance_id="same")


async def test_a_replica_behind_the_pruned_journal_reloads_its_live_state(
    start_app: Any, database_url: str, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    a = await start_app(instance_id="a")
    b = await start_app(instance_id="b")
    assert await ingest(a, lifecycle("n1", "org-1")) == 3
    await converged(a, b)
    store = store_for(database_url, tmp_path)
    try:
        with store.transaction():  # prune everything, and hide it from B: B is "behind"
            store.live.prune_journal(10**15)
    finally:
        store.close()
    b.app[LIVE].applied_id = 0
    assert await ingest(a, lifecycle("n2", "org-1", 10)) == 3
    body = await converged(a, b)
    assert body["artifacts_received_1h"] == 2
    assert "were pruned before this replica applied them" in caplog.text
