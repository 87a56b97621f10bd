"""The group commit's delay (``commit_delay_ms``, ``exporter/ingest/writer.py``): before a
commit starts, the writer waits, the delay at most, until as many ingest requests have
arrived since the previous commit ended as that commit answered, so clients that post
again once answered are committed together; requests that are refused count as arrived,
and requests that never finish arriving hold nothing beyond the delay."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from exporter.http.context import WRITER
from exporter.ingest import writer as writer_module
from tests.backends import both
from tests.conftest import make_event
from tests.scrape import samples, scrape
from tests.tools import post


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in 10 s")


async def _commits(client: Any) -> tuple[float, float, float]:
    """(group commits, events committed, seconds commits waited) from /metrics."""
    found = samples(await scrape(client), "voxmon_commit_")
    return (
        found[("voxmon_commit_batch_events_count", ())],
        found[("voxmon_commit_batch_events_sum", ())],
        found[("voxmon_commit_wait_seconds_total", ())],
    )


def _events(n: int) -> list[dict[str, Any]]:
    return [make_event() for _ in range(n)]


async def _two_answered(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Leave the writer having just answered one commit of two requests (A and B, queued
    while a first commit of W was held), which took at least 0.3 s (a wait is never longer
    than the commit before it), with nothing queued."""
    held, release = threading.Event(), threading.Event()
    real = writer_module.commit
    calls = {"n": 0}

    def hold_first_two(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            held.set()
            release.wait(10)
        elif calls["n"] == 2:
            time.sleep(0.3)
        return real(*args)

    monkeypatch.setattr(writer_module, "commit", hold_first_two)
    writer = client.server.app[WRITER]
    first = asyncio.create_task(post(client, _events(1)))
    await asyncio.to_thread(held.wait, 10)
    pair = [asyncio.create_task(post(client, _events(2))) for _ in range(2)]
    await _until(lambda: writer.queued_events == 5)  # W in the held commit, A and B queued
    release.set()
    assert (await first)[0] == 200
    assert [(await task)[0] for task in pair] == [200, 200]


@both
@pytest.mark.parametrize(("delay_ms", "commits"), [(1000, 3), (0, 4)])
async def test_clients_answered_together_are_committed_together(
    start_app: Any, database_url: str, monkeypatch: pytest.MonkeyPatch, delay_ms: int,
    commits: int,
) -> None:  # fmt: skip
    """After a commit answered A and B, A posts again, then B once A's request is in:
    with a delay the commit waits for B's and stores both; with none, A's is committed
    alone."""
    client = await start_app(commit_delay_ms=delay_ms)
    await _two_answered(client, monkeypatch)
    writer = client.server.app[WRITER]
    arrived = writer.arrived
    again = [asyncio.create_task(post(client, _events(3)))]
    await _until(lambda: writer.arrived == arrived + 1)
    again.append(asyncio.create_task(post(client, _events(3))))
    assert [(await task)[1]["accepted"] for task in again] == [3, 3]
    counted, events, waited = await _commits(client)
    # W alone; A and B (with a delay, after waiting as long as W's commit took for W's
    # client, which did not post again); then A's and B's next requests, together only
    # with a delay
    assert (counted, events) == (commits, 11)
    assert (waited > 0) is (delay_ms > 0)


@both
async def test_a_refused_request_counts_as_arrived(
    start_app: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One of the two clients answered comes back with a body that is refused: the commit
    of the other's events does not wait for a second request (the delay is 1 s)."""
    client = await start_app(commit_delay_ms=1000)
    await _two_answered(client, monkeypatch)
    _, _, waited_before = await _commits(client)
    refused = await client.post(
        "/v1/events", data=b"[{", headers={"Content-Type": "application/json"}
    )
    assert refused.status == 400
    status, body = await post(client, _events(2))
    assert (status, body["accepted"]) == (200, 2)
    counted, events, waited = await _commits(client)
    assert (counted, events) == (3, 7)
    assert waited - waited_before < 0.5  # not the second's whole delay


@both
async def test_the_wait_ends_at_the_delay_and_a_slow_client_holds_nothing(
    start_app: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only one of the two clients answered comes back, while another client's body never
    finishes: the commit waits out the delay (200 ms) and no longer."""
    client = await start_app(commit_delay_ms=200)
    await _two_answered(client, monkeypatch)
    _, _, waited_before = await _commits(client)
    port = client.server.port
    reader, stream = await asyncio.open_connection("127.0.0.1", port)
    stream.write(
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n[{"
    )
    await stream.drain()
    status, body = await post(client, _events(2))
    assert (status, body["accepted"]) == (200, 2)
    counted, events, waited = await _commits(client)
    assert (counted, events) == (3, 7)
    assert 0.2 <= waited - waited_before < 5
    stream.close()
    del reader


@both
async def test_no_wait_is_longer_than_the_commit_before_it(
    start_app: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clients that do not post again at once (one request each, one after the other)
    cost each commit at most as long a wait as the commit before it took, not the delay
    (1 s here): waits never add up to more than the commits, timed as the writer times
    them (the event loop's clock around each group commit; the commit histogram runs on
    the tests' frozen clock), however slow a loaded machine makes them."""
    timed = {"s": 0.0}
    real = writer_module.IngestWriter._commit_jobs

    async def timed_commit(self: Any, jobs: Any) -> None:
        began = asyncio.get_running_loop().time()
        try:
            await real(self, jobs)
        finally:
            timed["s"] += asyncio.get_running_loop().time() - began

    monkeypatch.setattr(writer_module.IngestWriter, "_commit_jobs", timed_commit)
    client = await start_app(commit_delay_ms=1000)
    together = [asyncio.create_task(post(client, _events(2))) for _ in range(3)]
    assert [(await task)[0] for task in together] == [200, 200, 200]
    for _ in range(4):
        await asyncio.sleep(0.05)
        assert (await post(client, _events(1)))[0] == 200
    found = samples(await scrape(client), "voxmon_commit_")
    assert found[("voxmon_commit_batch_events_sum", ())] == 10
    assert found[("voxmon_commit_wait_seconds_total", ())] <= timed["s"] + 0.05
