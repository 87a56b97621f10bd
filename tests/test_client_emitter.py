"""Client library: the outbox, then both emitters against a real voxmon on loopback
(in-process, and as a subprocess that is killed and restarted mid-stream), and the retry
bounds over real HTTP: a server with an injected poison fault, 400, 413, a refused port."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from voxmon_client import INGEST_PATH, AsyncEmitter, Backoff, ClientStats, Emitter, EventError
from voxmon_client.aio import post
from voxmon_client.courier import Courier
from voxmon_client.outbox import Outbox
from voxmon_client.transport import HttpTransport
from voxmon_client.wire import Send

from exporter.catalog import DISAMBIGUATION_TYPE
from exporter.clock import FakeClock
from exporter.settings import Token
from tests.conftest import T0, T0_MS, make_event
from tests.tools import daemon, free_port


def test_outbox_drops_oldest_and_counts_every_drop() -> None:
    outbox = Outbox(capacity=5, batch_size=2)
    for i in range(3):
        outbox.put({"event_id": f"e{i}"})
    assert [e["event_id"] for e in outbox.take()] == ["e0", "e1"]
    for i in range(3, 13):
        outbox.put({"event_id": f"e{i}"})
    stats = outbox.stats()
    assert (stats.emitted, stats.pending, stats.dropped) == (13, 5, 8)
    assert [e["event_id"] for e in outbox.queue] == ["e10", "e11", "e12"]


def test_outbox_drops_the_new_event_when_everything_is_in_flight() -> None:
    outbox = Outbox(capacity=3, batch_size=10)
    for i in range(3):
        outbox.put({"event_id": f"e{i}"})
    assert len(outbox.take()) == 3
    assert outbox.put({"event_id": "e3"}) is False
    assert (outbox.stats().dropped, outbox.stats().pending, len(outbox.queue)) == (1, 3, 0)


# --- against a real voxmon -------------------------------------------------------------


def stored(db: Path, where: str = "1", *args: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT * FROM events WHERE {where} ORDER BY seq", args).fetchall()


def stored_ids(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT event_id FROM events")]


def wait_ready(port: int) -> None:
    pause = threading.Event()
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        pause.wait(0.05)
    raise AssertionError("daemon did not become ready")


@pytest.fixture
def emitters() -> Iterator[list[Emitter]]:
    """Emitters to close at teardown, so no sender thread outlives its test."""
    made: list[Emitter] = []
    yield made
    for emitter in made:
        emitter.close(0)


def test_emitter_daemon_down_five_seconds_every_event_stored_exactly_once(
    tmp_path: Path, emitters: list[Emitter]
) -> None:
    db, port = tmp_path / "voxmon.db", free_port()
    backoff = Backoff(base_s=0.05, cap_s=0.5)
    emitter = Emitter(f"http://127.0.0.1:{port}", capacity=100_000, batch_size=200,
                      interval_s=0.05, backoff=backoff)  # fmt: skip
    emitters.append(emitter)
    emitted: list[str] = []
    stop, pause = threading.Event(), threading.Event()

    def produce() -> None:
        n = 0
        while not stop.is_set():
            for _ in range(10):
                n += 1
                emitted.append(emitter.emit("artifact_received", artifact_id=f"a{n}", org_id="o"))
            pause.wait(0.01)

    producer = threading.Thread(target=produce)
    with daemon(db, port) as first:
        wait_ready(port)
        producer.start()
        for _ in range(1500):
            if emitter.stats().accepted >= 1500:
                break
            pause.wait(0.02)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    down_since = len(emitted)
    pause.wait(5.0)
    with daemon(db, port):
        wait_ready(port)
        during_downtime = len(emitted) - down_since
        pause.wait(1.0)
        stop.set()
        producer.join()
        assert emitter.flush(30)
        stats = emitter.close(5)
    ids = stored_ids(db)
    assert during_downtime > 200 and stats.retries >= 1
    assert len(ids) == len(set(ids)) == len(emitted) == len(set(emitted))
    assert set(ids) == set(emitted)
    # a batch committed just before the kill, its answer lost, comes back as duplicates
    assert stats.emitted == stats.accepted + stats.duplicates == len(emitted)
    assert (stats.dropped, stats.rejected, stats.abandoned, stats.pending) == (0, 0, 0, 0)


def test_emitter_server_down_keeps_the_bound_and_counts_drops_exactly(
    tmp_path: Path, emitters: list[Emitter]
) -> None:
    db, port = tmp_path / "voxmon.db", free_port()
    emitter = Emitter(f"http://127.0.0.1:{port}", capacity=1000, batch_size=100,
                      interval_s=0.05, backoff=Backoff(base_s=0.05, cap_s=0.2))  # fmt: skip
    emitters.append(emitter)
    ids = [emitter.emit("artifact_received", artifact_id=f"a{i}") for i in range(10_000)]
    stats = emitter.stats()
    assert (stats.emitted, stats.pending, stats.dropped, stats.accepted) == (10_000, 1000, 9000, 0)
    assert len(set(ids)) == 10_000
    with daemon(db, port):
        wait_ready(port)
        assert emitter.flush(30)
    stats = emitter.close(1)
    kept = set(stored_ids(db))
    # The sender had taken at most one batch (the k oldest) before the server went away;
    # drop-oldest kept the newest 1000 - k.
    k = len(kept & set(ids[:9000]))
    assert k <= 100
    assert kept == set(ids[:k]) | set(ids[10_000 - (1000 - k) :])
    assert (stats.accepted, stats.dropped, stats.pending) == (1000, 9000, 0)


async def test_stage_helper_emits_started_then_success_or_failure(
    start_app: Any, clock: FakeClock, tmp_path: Path
) -> None:
    client = await start_app()
    url = str(client.server.make_url(""))
    async with AsyncEmitter(url, clock=clock) as emitter:
        with emitter.stage("art-1", "transcription", org_id="org-a") as s:
            clock.advance(1.5)
            s.metadata["confidence"] = 0.9
        failing = emitter.stage("art-1", "claims_extraction", org_id="org-a")
        with pytest.raises(ValueError, match="no claims"), failing:
            clock.advance(0.25)
            raise ValueError("no claims")
        with emitter.stage("art-2", "entity_resolution", metadata={"entity_count": 3}) as s:
            clock.advance(0.125)
            s.metadata["disambiguation_count"] = 1
            s.success_type = DISAMBIGUATION_TYPE
        assert await emitter.flush(10)
    rows = stored(tmp_path / "voxmon.db")
    seen = [(r[2], r[3] - T0_MS, r[5], r[6], r[10], r[14], r[15], r[23]) for r in rows]
    assert seen == [
        ("transcription_started", 0, "art-1", "org-a", None, None, None, None),
        ("transcription_completed", 1500, "art-1", "org-a", 1500.0, None, None,
         '{"confidence":0.9}'),
        ("claims_extraction_started", 1500, "art-1", "org-a", None, None, None, None),
        ("claims_extraction_failed", 1750, "art-1", "org-a", 250.0, "ValueError", "no claims",
         None),
        ("entity_resolution_started", 1750, "art-2", None, None, None, None, None),
        ("entity_needs_disambiguation", 1875, "art-2", None, 125.0, None, None,
         '{"entity_count":3,"disambiguation_count":1}'),
    ]  # fmt: skip
    assert emitter.stats().accepted == 6


async def test_stage_helper_with_an_unknown_stage_emits_nothing_and_still_raises(
    start_app: Any, clock: FakeClock
) -> None:
    client = await start_app()
    async with AsyncEmitter(str(client.server.make_url("")), clock=clock) as emitter:
        with pytest.raises(KeyError), emitter.stage("art-1", "transcribing"):
            raise KeyError("x")
        assert emitter.stats().emitted == 0


async def test_emitter_rejects_4xx_without_retrying(
    start_app: Any, emitters: list[Emitter]
) -> None:
    token = "ingest-token-0000000000"
    client = await start_app(tokens=(Token("ingest", token, frozenset({"ingest"})),))
    url = str(client.server.make_url(""))
    wrong = Emitter(url, token="wrong-token-00000000000")
    right = Emitter(url, token=token)
    emitters.extend((wrong, right))
    for n in range(3):
        wrong.emit("artifact_received", artifact_id=f"a{n}", timestamp=T0)
    right.emit("artifact_received", artifact_id="a1", timestamp=T0)
    right.emit("artifact_recieved", artifact_id="a2", timestamp=T0)
    right.emit("artifact_received", timestamp=T0)  # no artifact_id
    assert await asyncio.to_thread(wrong.flush, 10)
    assert await asyncio.to_thread(right.flush, 10)
    stats = wrong.stats()
    assert (stats.accepted, stats.rejected, stats.retries) == (0, 3, 0)
    stats = right.stats()
    assert (stats.accepted, stats.rejected, stats.retries) == (1, 2, 0)


async def test_emitter_emit_never_raises_and_fills_id_and_time(
    start_app: Any, clock: FakeClock, tmp_path: Path, emitters: list[Emitter]
) -> None:
    client = await start_app()
    emitter = Emitter(str(client.server.make_url("")), clock=clock)
    emitters.append(emitter)
    event_id = emitter.emit("artifact_received", artifact_id="a1", org_id="o")
    assert emitter.emit("artifact_received", artifact_id="a2", **{"metadata": {1, 2}}) != ""
    given = emitter.emit("artifact_received", artifact_id="a3", event_id="mine")
    assert await asyncio.to_thread(emitter.flush, 10)
    rows = {r[1]: r for r in stored(tmp_path / "voxmon.db")}
    assert set(rows) == {event_id, "mine"} and given == "mine"
    assert rows[event_id][3] == T0_MS and len(event_id) == 36 and event_id[14] == "4"
    assert emitter.stats().rejected == 1


# --- nothing is retried forever, over real HTTP -----------------------------------------


def settled(stats: ClientStats) -> int:
    """Events in a final bucket or pending: always every emitted event."""
    s = stats
    return s.accepted + s.duplicates + s.rejected + s.dropped + s.abandoned + s.failed + s.pending


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


def test_refused_connections_are_retried_within_the_budget_then_counted(clock: FakeClock) -> None:
    url = f"http://127.0.0.1:{free_port()}{INGEST_PATH}"  # nothing listens there
    transport = HttpTransport(url, {"Content-Type": "application/json"}, 1.0)
    c = Courier(Outbox(100, 10), clock, Backoff(), 1.0, random.Random(1), budget_s=30.0)
    for _ in range(25):
        c.outbox.put(make_event())
    c.flush_target, attempts = 25, 0
    while not c.idle and attempts < 1000:
        step = c.next()
        if isinstance(step, Send):
            attempts += 1
            c.done(transport.post(step.body))
        else:
            assert isinstance(step, float)
            clock.advance(step)
    stats = c.outbox.stats()
    assert (stats.failed, stats.pending, settled(stats), stats.emitted) == (25, 0, 25, 25)
    # three batches, one at a time, each tried until its 30 s budget ran out
    assert (attempts, stats.retries) == (29, 26)
    assert stats.recent_errors[0].message.startswith("given up: ConnectionRefusedError")


def test_emitter_gives_up_on_a_refused_port_and_flush_returns(emitters: list[Emitter]) -> None:
    emitter = Emitter(f"http://127.0.0.1:{free_port()}", backoff=Backoff(base_s=0.01, cap_s=0.05),
                      retry_budget_s=0.3)  # fmt: skip
    emitters.append(emitter)
    ids = [emitter.emit("artifact_received", artifact_id=f"a{i}") for i in range(20)]
    assert emitter.flush(10)
    stats = emitter.stats()
    assert (stats.failed, stats.accepted, stats.pending, settled(stats)) == (20, 0, 0, 20)
    assert stats.retries >= 3
    assert [e.event_id for e in stats.recent_errors] == ids
