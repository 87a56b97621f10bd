"""Client library: the sans-I/O outbox and courier on a fake clock, then both emitters
against a real voxmon on loopback (in-process, and as a subprocess that is killed and
restarted mid-stream)."""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import signal
import sqlite3
import threading
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from exporter.catalog import DISAMBIGUATION_TYPE
from exporter.client import AsyncEmitter, Emitter
from exporter.clock import FakeClock
from exporter.outbox import Backoff, Courier, Outbox, Response, Send
from exporter.settings import Token
from tests.conftest import T0, T0_MS
from tests.tools import daemon, free_port


def courier(clock: FakeClock, capacity: int = 100, batch_size: int = 3) -> Courier:
    return Courier(Outbox(capacity, batch_size), clock, Backoff(), 1.0, random.Random(1))


def put(c: Courier, *ids: str) -> None:
    for event_id in ids:
        c.outbox.put({"event_id": event_id, "event_type": "artifact_received"})


def sent_ids(step: Send | float | None) -> list[str]:
    assert isinstance(step, Send)
    return [e["event_id"] for e in msgspec.json.decode(step.body)]


def ok(accepted: int, duplicates: int = 0, rejected: int = 0) -> Response:
    rows = [{"index": i, "event_id": None, "errors": []} for i in range(rejected)]
    body = {"accepted": accepted, "duplicates": duplicates, "rejected": rows}
    return Response(200, msgspec.json.encode(body))


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


def test_courier_sends_a_full_batch_at_once_and_a_partial_one_after_the_interval(
    clock: FakeClock,
) -> None:
    c = courier(clock)
    put(c, "a", "b")
    assert c.next() == 1.0
    clock.advance(0.25)
    assert c.next() == 0.75
    put(c, "c", "d")
    assert sent_ids(c.next()) == ["a", "b", "c"]
    c.done(ok(3))
    assert c.next() == 1.0
    clock.advance(1.0)
    assert sent_ids(c.next()) == ["d"]


def test_courier_flush_sends_a_partial_batch_now(clock: FakeClock) -> None:
    c = courier(clock)
    put(c, "a")
    c.flush_target = 1
    assert sent_ids(c.next()) == ["a"]
    c.done(ok(1))
    assert c.outbox.resolved == 1
    assert c.next() == 1.0


def test_courier_retries_the_same_bytes_after_retry_after(clock: FakeClock) -> None:
    c = courier(clock)
    put(c, "a", "b", "c")
    first = c.next()
    assert isinstance(first, Send)
    c.done(Response(503, b'{"error":{}}', "3"))
    assert c.next() == 3.0
    clock.advance(2.5)
    assert c.next() == 0.5
    clock.advance(0.5)
    assert c.next() == first
    c.done(ok(2, duplicates=1))
    stats = c.outbox.stats()
    assert (stats.accepted, stats.duplicates, stats.retries, stats.pending) == (2, 1, 1, 0)


def test_courier_retry_after_as_http_date(clock: FakeClock) -> None:
    c = courier(clock)
    put(c, "a", "b", "c")
    c.next()
    when = email.utils.format_datetime(T0 + timedelta(seconds=7), usegmt=True)
    c.done(Response(429, b"", when))
    assert c.next() == 7.0


@pytest.mark.parametrize("status", [None, 500, 502, 503, 504, 408, 429])
def test_courier_retries_server_and_connection_errors(clock: FakeClock, status: int | None) -> None:
    c = courier(clock)
    put(c, "a", "b", "c")
    c.next()
    c.done(Response(status, error="ConnectionRefusedError" if status is None else ""))
    wait = c.next()
    assert isinstance(wait, float) and 0.05 <= wait <= 0.1
    assert c.outbox.stats().retries == 1 and c.outbox.stats().pending == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 415])
def test_courier_rejects_client_errors_without_retry(clock: FakeClock, status: int) -> None:
    c = courier(clock)
    put(c, "a", "b", "c")
    c.next()
    c.done(Response(status, b'{"error":{"code":"x","message":"no","details":[]}}'))
    stats = c.outbox.stats()
    assert (stats.rejected, stats.retries, stats.pending) == (3, 0, 0)
    assert c.next() == 1.0


def test_courier_counts_per_item_rejections(clock: FakeClock) -> None:
    c = courier(clock)
    put(c, "a", "b", "c")
    c.next()
    c.done(ok(1, duplicates=1, rejected=1))
    stats = c.outbox.stats()
    assert (stats.accepted, stats.duplicates, stats.rejected) == (1, 1, 1)


def test_courier_rejects_unencodable_events_locally(clock: FakeClock) -> None:
    c = courier(clock)
    put(c, "a")
    c.outbox.put({"event_id": "bad", "event_type": "x", "metadata": object()})
    put(c, "c")
    assert sent_ids(c.next()) == ["a", "c"]
    assert c.outbox.stats().rejected == 1


def test_courier_close_abandons_what_it_cannot_deliver_in_time(clock: FakeClock) -> None:
    c = courier(clock)
    put(c, "a", "b", "c", "d")
    c.next()
    c.done(Response(None, error="down"))
    c.close_at = clock.monotonic() + 0.02
    assert c.next() == pytest.approx(0.02)
    clock.advance(0.02)
    assert c.next() is None
    stats = c.outbox.stats()
    assert (stats.abandoned, stats.pending) == (4, 0)


def test_backoff_doubles_within_jitter_bounds_up_to_the_cap() -> None:
    backoff, rng = Backoff(base_s=0.1, cap_s=1.0), random.Random(5)
    for attempt, ceiling in enumerate([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]):
        delays = [backoff.delay(attempt, 0.0, rng) for _ in range(200)]
        assert ceiling / 2 <= min(delays) and max(delays) <= ceiling
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not constant
    assert backoff.delay(0, 30.0, rng) == 30.0
    assert backoff.delay(0, 1e9, rng) == 60.0


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
