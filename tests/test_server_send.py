"""Slow readers: a client that sends requests and never reads the answers holds its
connection busy only until ``body_timeout_s``, then loses it, so a few such clients can no
longer lock every other client out at the connection cap."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.scrape import samples
from tests.tools import exchange

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
PIPELINED = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n" * 2000  # answers: ~60 MB


async def test_server_closes_a_connection_whose_client_never_reads(start_app: Any) -> None:
    client = await start_app(max_connections=2, body_timeout_s=1)
    stalled = [await asyncio.open_connection("127.0.0.1", client.port) for _ in range(2)]
    for _, writer in stalled:
        writer.write(PIPELINED)
    await asyncio.sleep(0.5)  # both answers are being written: the server is at its cap
    assert (await exchange(client.port, HEALTHZ, wait_s=2))[0] is None  # refused
    status = None
    for _ in range(20):  # each try waits at most 2 s for its answer
        status, _ = await exchange(client.port, HEALTHZ, wait_s=2)
        if status == 200:
            break
        await asyncio.sleep(0.5)
    assert status == 200
    for _, writer in stalled:
        writer.transport.abort()
    found = samples(await (await client.get("/metrics")).text(), "voxmon_http_send")
    assert found[("voxmon_http_send_timeouts_total", ())] == 2.0


async def test_server_aborts_a_stalled_answer_between_one_and_a_quarter_more_timeouts(
    start_app: Any,
) -> None:
    """The send deadline is swept a quarter of ``body_timeout_s`` apart: a client that
    stops reading keeps its connection for at least the timeout and loses it at the first
    sweep after it; once nothing is being written, no sweep stays scheduled."""
    client = await start_app(body_timeout_s=2)
    server = client.server.runner.server
    loop = asyncio.get_running_loop()
    _, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(PIPELINED)
    started = loop.time()
    while not server.voxmon_connections.sending:
        await asyncio.sleep(0.01)
        assert loop.time() - started < 5, "no answer began"
    began = loop.time()
    assert server.voxmon_sweep is not None
    assert 0 < server.voxmon_sweep.when() - began <= 0.5  # a quarter of the timeout
    await asyncio.sleep(1.8)
    assert len(server.voxmon_connections.sending) == 1  # not yet: within the timeout
    while server.voxmon_connections.sending:
        await asyncio.sleep(0.02)
        assert loop.time() - began < 5.0, "never aborted"
    assert loop.time() - began >= 2.0
    await asyncio.sleep(0.6)  # the sweep after the abort finds nothing and stops
    assert server.voxmon_sweep is None
    found = samples(await (await client.get("/metrics")).text(), "voxmon_http_send")
    assert found[("voxmon_http_send_timeouts_total", ())] == 1.0
    writer.transport.abort()
