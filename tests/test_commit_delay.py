"""The group commit's delay (``commit_delay_ms``, ``exporter/ingest/writer.py``): a commit
waits for ingest requests being received or parsed, so requests sent together are
committed together, but never for long for a slow client."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from exporter.http import ingest
from exporter.http.context import WRITER
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


async def _begin(client: Any, body: bytes, sent: int) -> tuple[Any, Any]:
    """A request whose first ``sent`` body bytes are sent; the rest waits."""
    port = client.server.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    writer.write(head + body[:sent])
    await writer.drain()
    return reader, writer


@both
@pytest.mark.parametrize(("delay_ms", "commits"), [(1000, 1), (0, 2)])
async def test_requests_sent_together_are_committed_together(
    start_app: Any, database_url: str, delay_ms: int, commits: int
) -> None:
    """B is still being received when A is queued: with a delay the commit waits for B
    and stores both at once; with none, A is committed alone first."""
    client = await start_app(commit_delay_ms=delay_ms)
    writer = client.server.app[WRITER]
    body = json.dumps([make_event(event_id="b1")]).encode()
    reader, stream = await _begin(client, body, 10)
    await _until(lambda: writer.arriving_requests == 1)
    first = asyncio.create_task(post(client, [make_event(event_id="a1"), make_event()]))
    await _until(lambda: writer.queued_events == 2 or first.done())
    stream.write(body[10:])
    await stream.drain()
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert (await first)[1]["accepted"] == 2
    stream.close()
    counted, events, waited = await _commits(client)
    assert (counted, events) == (commits, 3)
    assert (waited > 0) is (delay_ms > 0)


@both
async def test_a_slow_request_delays_no_commit(start_app: Any, database_url: str) -> None:
    """A request still being received that began more than the delay before a commit is
    not waited for: A is committed, alone and at once, while B never completes."""
    client = await start_app(commit_delay_ms=100)
    writer = client.server.app[WRITER]
    _, stream = await _begin(client, json.dumps([make_event()]).encode(), 10)
    await _until(lambda: writer.arriving_requests == 1)
    await asyncio.sleep(0.3)  # B began three delays ago
    status, body = await post(client, [make_event(), make_event()])
    assert (status, body["accepted"]) == (200, 2)
    assert await _commits(client) == (1, 2, 0.0)
    assert writer.arriving_requests == 1  # B is still being received
    stream.close()


@both
async def test_a_request_being_parsed_is_waited_for_however_long_ago_it_began(
    start_app: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """B's body is received and held in parsing past the delay; A, queued meanwhile, waits
    for it: parsing takes bounded time, unlike a slow client's receiving."""
    entered, release = threading.Event(), threading.Event()
    real = ingest._parse

    def held(body: bytes, *args: Any) -> Any:
        if b"held-" in body:
            entered.set()
            release.wait(10)
        return real(body, *args)

    monkeypatch.setattr(ingest, "_parse", held)
    client = await start_app(commit_delay_ms=200)
    writer = client.server.app[WRITER]
    held_events = [make_event(event_id=f"held-{i}") for i in range(40)]
    second = asyncio.create_task(post(client, held_events))
    await asyncio.to_thread(entered.wait, 10)
    await asyncio.sleep(0.5)  # B began well over the delay ago; it is being parsed
    first = asyncio.create_task(post(client, [make_event(), make_event()]))
    await _until(lambda: writer.queued_events == 2 or first.done())
    release.set()
    assert (await first)[1]["accepted"] == 2
    assert (await second)[1]["accepted"] == 40
    counted, events, waited = await _commits(client)
    assert (counted, events) == (1, 42)
    assert waited > 0
