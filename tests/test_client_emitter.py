"""The synchronous ``Emitter`` against a real voxmon on loopback (in-process, and as a
subprocess that is killed and restarted mid-stream), final 4xx, and the retry bounds over
real HTTP against a refused port."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from voxmon_client import INGEST_PATH, Backoff, Emitter
from voxmon_client.courier import Courier
from voxmon_client.outbox import Outbox
from voxmon_client.transport import HttpTransport
from voxmon_client.wire import Send

from exporter.tokens import Token
from tests.conftest import T0, T0_MS, make_event
from tests.tools import FakeClock, daemon, free_port, settled, stored, stored_ids, wait_ready_port


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
        wait_ready_port(port)
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
        wait_ready_port(port)
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
        wait_ready_port(port)
        assert emitter.flush(30)
    stats = emitter.close(1)
    kept = set(stored_ids(db))
    # The sender had taken at most one batch (the k oldest) before the server went away;
    # drop-oldest kept the newest 1000 - k.
    k = len(kept & set(ids[:9000]))
    assert k <= 100
    assert kept == set(ids[:k]) | set(ids[10_000 - (1000 - k) :])
    assert (stats.accepted, stats.dropped, stats.pending) == (1000, 9000, 0)


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
