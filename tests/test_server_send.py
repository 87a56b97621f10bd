"""Slow readers: a client that sends requests and never reads the answers holds its
connection busy only until ``body_timeout_s``, then loses it, so a few such clients can no
longer lock every other client out at the connection cap."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from types import SimpleNamespace
from typing import Any

import pytest

from exporter.http.connections import Connections
from exporter.http.server import _sweep_sends
from tests.scrape import samples
from tests.tools import exchange

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
OPENAPI = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n"
OPENAPI_CLOSE = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
PIPELINED = OPENAPI * 2000  # answers: ~60 MB


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


async def test_shutdown_does_not_wait_past_the_send_timeout_for_a_stalled_client(
    start_app: Any,
) -> None:
    """A client stalled mid-answer when the server stops loses its connection at the send
    timeout, as at any other time: aiohttp's shutdown would otherwise wait for its answer
    twice over its 60 s shutdown timeout (the attack review saw 122 s)."""
    client = await start_app(body_timeout_s=1)
    server = client.server.runner.server
    loop = asyncio.get_running_loop()
    _, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(PIPELINED)
    while not server.voxmon_connections.sending:
        await asyncio.sleep(0.01)
    began = loop.time()
    await client.close()
    assert loop.time() - began < 10  # due at 1 s and the next sweep; far below 60 s
    assert server.voxmon_connections.send_timeouts == 1
    assert server.voxmon_sweep is None
    writer.transport.abort()


async def _stalled_client(port: int, requests: bytes) -> socket.socket:
    """A client socket with a small receive buffer that sends ``requests`` (as much as the
    server takes at once) and is not read until its test means to: the server's answers
    back up behind it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    with contextlib.suppress(BlockingIOError):
        sock.send(requests)
    return sock


class _Stalled:
    """A held connection whose abort fails."""

    busy = served = True

    def force_close(self) -> None: ...

    def abort(self) -> None:
        raise RuntimeError("abort failed")


async def test_a_sweep_whose_abort_raises_still_schedules_the_next() -> None:
    server = SimpleNamespace(
        voxmon_connections=Connections(cap=10),
        voxmon_send_timeout_s=2.0,
        voxmon_sweep=None,
        voxmon_stopping=False,
    )
    loop = asyncio.get_running_loop()
    failing, waiting = _Stalled(), _Stalled()
    server.voxmon_connections.sending.update({failing: loop.time() - 1, waiting: loop.time() + 60})
    with pytest.raises(RuntimeError, match="abort failed"):
        _sweep_sends(server)  # type: ignore[arg-type]
    assert server.voxmon_sweep is not None
    assert 0 < server.voxmon_sweep.when() - loop.time() <= 0.5
    assert list(server.voxmon_connections.sending) == [waiting]
    server.voxmon_sweep.cancel()


async def test_a_closing_connection_with_unsent_answers_is_aborted_at_the_send_timeout(
    start_app: Any,
) -> None:
    """Clients that pipeline requests, the last with ``Connection: close``, and never read:
    for some counts the last answers fit the transport's buffer without waiting, the
    server closes its side, and asyncio would hold the socket until the client reads.
    Every such connection is aborted once the send timeout has passed."""
    client = await start_app(body_timeout_s=1, max_connections=200)
    server = client.server.runner.server
    loop = asyncio.get_running_loop()
    socks = [  # which counts leave bytes unsent depends on buffer sizes
        await _stalled_client(client.port, OPENAPI * (count - 1) + OPENAPI_CLOSE)
        for count in range(60, 140)
    ]
    began = loop.time()
    while server.connections and loop.time() - began < 15:
        await asyncio.sleep(0.1)
    assert server.connections == []
    assert server.voxmon_connections.send_timeouts >= 1
    for sock in socks:
        sock.close()


async def test_an_aborted_answer_is_reset_not_left_for_the_kernel_to_send(
    start_app: Any,
) -> None:
    """The abort resets the connection: the kernel drops the unsent answer (megabytes for
    a client that pipelined) instead of holding it until the client reads, so a client
    that reads later gets a reset after what it had already been sent."""
    client = await start_app(body_timeout_s=1)
    server = client.server.runner.server
    loop = asyncio.get_running_loop()
    sock = await _stalled_client(client.port, PIPELINED[:200_000])
    while not server.voxmon_connections.send_timeouts:
        await asyncio.sleep(0.05)
    read, deadline = 0, loop.time() + 5
    with pytest.raises(ConnectionResetError):
        while loop.time() < deadline:
            with contextlib.suppress(BlockingIOError):
                data = sock.recv(1 << 20)
                assert data, f"the server closed normally after {read} bytes"
                read += len(data)
            await asyncio.sleep(0.001)
    assert read < 1_000_000  # far less than the answers the server had queued
    sock.close()


async def test_a_connection_closed_with_answers_unsent_is_reset_not_held(start_app: Any) -> None:
    """Evicted at the cap, idle past the keep-alive timeout or shut down, a connection is
    closed with ``force_close``; with answers still unsent (its client stopped reading) a
    close would hold the socket until the client reads, so it is reset instead."""
    client = await start_app()
    server = client.server.runner.server
    loop = asyncio.get_running_loop()
    sock = await _stalled_client(client.port, PIPELINED[:200_000])
    while not server.voxmon_connections.sending:
        await asyncio.sleep(0.01)
    (handler,) = server.voxmon_connections.sending
    assert handler.transport.get_write_buffer_size() > 0
    handler.force_close()  # as eviction, the keep-alive timeout or shutdown would
    began = loop.time()
    while server.connections and loop.time() - began < 5:
        await asyncio.sleep(0.05)
    assert server.connections == []
    sock.close()
