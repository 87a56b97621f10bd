"""Both emitters' HTTP against a hostile loopback server: a server that stalls or trickles
its answer cannot hang the sender past ``timeout_s``, and one that sends a huge body cannot
make it read more than ``MAX_RESPONSE_BYTES``."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import aiohttp
import pytest
from voxmon_client.aio import post
from voxmon_client.transport import HttpTransport
from voxmon_client.wire import MAX_RESPONSE_BYTES, Response

Behaviour = Callable[[socket.socket], None]


def trickle(conn: socket.socket) -> None:
    """An answer that never finishes: one byte of the status line every 50 ms."""
    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" * 100:
        conn.sendall(bytes([byte]))
        time.sleep(0.05)


def huge(conn: socket.socket) -> None:
    """A 200 whose body never ends (claims 1 TB); counts what it managed to send."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n")
    chunk = b"x" * 65536
    while True:
        conn.sendall(chunk)


@pytest.fixture
def hostile() -> Iterator[Callable[[Behaviour], str]]:
    """``serve(behaviour)`` -> the URL of a loopback server running ``behaviour`` on every
    connection once the request head has arrived."""
    servers: list[socket.socket] = []

    def serve(behaviour: Behaviour) -> str:
        listener = socket.create_server(("127.0.0.1", 0))
        servers.append(listener)

        def accept() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                threading.Thread(target=_answer, args=(conn, behaviour), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}/v1/events"

    yield serve
    for listener in servers:
        listener.close()


def _answer(conn: socket.socket, behaviour: Behaviour) -> None:
    with conn:
        conn.recv(65536)
        with contextlib.suppress(OSError):  # the client gave up and closed: what we want
            behaviour(conn)


def _sync_post(url: str, timeout_s: float) -> Response:
    """POST with the sync transport in a thread, waiting at most 10 s for it."""
    transport = HttpTransport(url, {"Content-Type": "application/json"}, timeout_s)
    found: list[Response] = []
    worker = threading.Thread(target=lambda: found.append(transport.post(b"[]")), daemon=True)
    worker.start()
    worker.join(10)
    assert found, "the transport did not return within 10 s"
    return found[0]


def test_client_transport_gives_up_on_a_trickled_answer(hostile: Callable[..., str]) -> None:
    response = _sync_post(hostile(trickle), timeout_s=0.5)
    assert response.status is None
    assert response.error == "no complete answer within 0.5 s (timeout_s)"


def test_client_transport_reads_at_most_a_mebibyte(hostile: Callable[..., str]) -> None:
    response = _sync_post(hostile(huge), timeout_s=5)
    assert response.status is None
    assert response.error == f"answer body over {MAX_RESPONSE_BYTES} bytes"


async def _aio_post(url: str, timeout_s: float) -> Response:
    timeout = aiohttp.ClientTimeout(total=None, connect=5, sock_read=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        return await post(session, url, b"[]", deadline_s=timeout_s)


async def test_client_aio_gives_up_on_a_trickled_answer(hostile: Callable[..., str]) -> None:
    response = await asyncio.wait_for(_aio_post(hostile(trickle), 0.5), 10)
    assert response.status is None
    assert response.error == "no complete answer within 0.5 s (timeout_s)"


async def test_client_aio_reads_at_most_a_mebibyte(hostile: Callable[..., str]) -> None:
    response = await asyncio.wait_for(_aio_post(hostile(huge), 5), 10)
    assert response.status is None
    assert response.error == f"answer body over {MAX_RESPONSE_BYTES} bytes"
