"""``AsyncEmitter`` and the courier over real HTTP: nothing is retried forever (a server
with an injected poison fault), a 400 is final, a 413 splits the batch until it fits."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from voxmon_client import INGEST_PATH, AsyncEmitter, Backoff, EventError
from voxmon_client.aio import post
from voxmon_client.courier import Courier
from voxmon_client.outbox import Outbox
from voxmon_client.wire import Send

from tests.conftest import make_event
from tests.tools import FakeClock, settled, stored_ids


@dataclass
class PoisonServer:
    """An ingest endpoint with an injected fault: 500 for any batch holding an event whose
    ``event_id`` starts with ``poison``, else 200 with voxmon's response shape."""

    url: str = ""
    seen: list[list[str]] = field(default_factory=list)
    failed: asyncio.Event = field(default_factory=asyncio.Event)

    async def ingest(self, request: web.Request) -> web.Response:
        ids = [event["event_id"] for event in await request.json()]
        self.seen.append(ids)
        if any(event_id.startswith("poison") for event_id in ids):
            self.failed.set()
            error = {"code": "internal", "message": "injected fault", "details": []}
            return web.json_response({"error": error}, status=500)
        return web.json_response({"accepted": len(ids), "duplicates": 0, "rejected": []})


@pytest.fixture
async def poison_server(aiohttp_server: Any) -> PoisonServer:
    server = PoisonServer()
    app = web.Application()
    app.router.add_post(INGEST_PATH, server.ingest)
    server.url = str((await aiohttp_server(app)).make_url(""))
    return server


async def deliver(c: Courier, clock: FakeClock, url: str) -> None:
    """The AsyncEmitter's send loop on virtual time: every wait advances the fake clock.
    Stops after 1,000 steps, so a courier that retries forever fails the test."""
    async with aiohttp.ClientSession() as session:
        for _ in range(1000):
            if c.idle:
                return
            step = c.next()
            if isinstance(step, Send):
                c.done(await post(session, url + INGEST_PATH, step.body))
            else:
                assert isinstance(step, float)
                clock.advance(step)


async def test_poisoned_batch_delivers_the_other_events_and_fails_the_poison_alone(
    poison_server: PoisonServer, clock: FakeClock
) -> None:
    c = Courier(Outbox(10_000, 500), clock, Backoff(), 1.0, random.Random(1))
    ids = [f"poison-{i}" if i == 137 else f"evt-{i}" for i in range(200)]
    for event_id in ids:
        c.outbox.put(make_event(event_id=event_id))
    c.flush_target = 200
    await deliver(c, clock, poison_server.url)
    stats = c.outbox.stats()
    assert (stats.accepted, stats.failed, stats.pending, settled(stats)) == (199, 1, 0, 200)
    reason = "given up: HTTP 500 on each of 5 attempts"
    assert stats.recent_errors == (EventError("poison-137", "", reason),)
    delivered = [i for batch in poison_server.seen if "poison-137" not in batch for i in batch]
    assert sorted(delivered) == sorted(set(ids) - {"poison-137"})  # each once
    # 5 attempts at each of 8 sizes (200, 100, 50, 25, 13, 6, 3, 1) with the default backoff
    assert len(poison_server.seen) == 47
    assert clock.monotonic() - 1000.0 == pytest.approx(16.51, abs=0.01)


async def test_async_emitter_keeps_delivering_new_events_while_a_poisoned_batch_is_split(
    poison_server: PoisonServer,
) -> None:
    backoff = Backoff(base_s=0.002, cap_s=0.02)
    url = poison_server.url
    async with AsyncEmitter(url, backoff=backoff, batch_size=100, interval_s=0.01) as emitter:
        for i in range(100):
            emitter.emit("artifact_received", artifact_id="a", event_id=f"poison-{i}" if i == 37
                         else f"early-{i}")  # fmt: skip
        await asyncio.wait_for(poison_server.failed.wait(), 10)
        late = [emitter.emit("artifact_received", artifact_id="a") for _ in range(100)]
        assert await emitter.flush(30)
        stats = emitter.stats()
    assert (stats.accepted, stats.failed, stats.pending, settled(stats)) == (199, 1, 0, 200)
    seen = poison_server.seen
    first_late = next(n for n, batch in enumerate(seen) if late[0] in batch)
    assert first_late < len(seen) - 1 and seen[-1] == ["poison-37"]


async def test_emitter_counts_a_400_as_rejected_at_once_and_keeps_the_item_errors(
    start_app: Any, clock: FakeClock
) -> None:
    client = await start_app()
    async with AsyncEmitter(str(client.server.make_url("")), clock=clock) as emitter:
        ids = [
            emitter.emit("transcription_completed", artifact_id=f"a{i}",
                         metadata={"confidence": 1.5})
            for i in range(3)
        ]  # fmt: skip
        assert await emitter.flush(10)
        stats = emitter.stats()
    assert (stats.accepted, stats.rejected, stats.retries, stats.pending) == (0, 3, 0, 0)
    errors = stats.recent_errors
    assert [(e.event_id, e.field) for e in errors] == [(i, "metadata.confidence") for i in ids]
    assert all(e.message for e in errors)


async def test_emitter_splits_batches_voxmon_finds_too_large_until_they_fit(
    start_app: Any, clock: FakeClock, tmp_path: Path
) -> None:
    client = await start_app(max_batch=10)
    url = str(client.server.make_url(""))
    async with AsyncEmitter(url, clock=clock, batch_size=64) as emitter:
        ids = [emitter.emit("artifact_received", artifact_id=f"a{i}") for i in range(64)]
        assert await emitter.flush(10)
        stats = emitter.stats()
    # 64 -> 2 x 32 -> 4 x 16 -> 8 x 8: seven 413s, each answered by splitting
    assert (stats.accepted, stats.rejected, stats.retries, stats.pending) == (64, 0, 7, 0)
    assert sorted(stored_ids(tmp_path / "voxmon.db")) == sorted(ids)
