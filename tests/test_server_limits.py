"""The HTTP server under hostile connections: at the connection cap the oldest idle
connection makes room for a new one, protocol errors are counted by reason, an unknown
``Expect`` and an endless chunked body get voxmon's JSON error body."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import msgspec

from tests.scrape import samples
from tests.tools import BUSY_HEAD as BUSY
from tests.tools import exchange, free_port, http, serving, wait_listening

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


async def _metrics(client: Any, prefix: str) -> dict[Any, float]:
    return samples(await (await client.get("/metrics")).text(), prefix)


async def test_server_at_the_cap_evicts_the_oldest_idle_connection(start_app: Any) -> None:
    client = await start_app(max_connections=3)
    idle = [await asyncio.open_connection("127.0.0.1", client.port) for _ in range(3)]
    idle[1][1].write(b"GET /heal")  # a trickled head is idle too: no request in progress
    await asyncio.sleep(0.2)
    status, _ = await exchange(client.port, HEALTHZ, wait_s=5)
    assert status == 200
    assert await asyncio.wait_for(idle[0][0].read(), 5) == b""  # the oldest was closed
    assert not idle[1][0].at_eof() and not idle[2][0].at_eof()
    for _, writer in idle:
        writer.close()
    await asyncio.sleep(0.2)
    found = await _metrics(client, "voxmon_http_conn")
    assert found[("voxmon_http_connections_evicted_total", ())] == 1.0
    assert found[("voxmon_http_connections_refused_total", ())] == 0.0


async def test_server_at_the_cap_refuses_only_when_every_connection_is_busy(
    start_app: Any,
) -> None:
    client = await start_app(max_connections=3, body_timeout_s=5)
    busy = [await asyncio.open_connection("127.0.0.1", client.port) for _ in range(3)]
    for _, writer in busy:
        writer.write(BUSY)
    await asyncio.sleep(0.3)
    status, _ = await exchange(client.port, HEALTHZ, wait_s=5)
    assert status is None  # closed unanswered: nothing could make room
    assert all(not reader.at_eof() for reader, _ in busy)
    for _, writer in busy:
        writer.close()
    await asyncio.sleep(0.2)
    found = await _metrics(client, "voxmon_http_conn")
    assert found[("voxmon_http_connections_refused_total", ())] == 1.0
    assert found[("voxmon_http_connections_evicted_total", ())] == 0.0


async def test_server_counts_protocol_errors_by_reason(start_app: Any) -> None:
    client = await start_app()
    for request in (
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"b" * 9000 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: \x00\r\n\r\n",
        b"BREW /pot HTCPCP/1.0\r\n\r\n",
    ):
        assert (await exchange(client.port, request))[0] == 400
    found = await _metrics(client, "voxmon_http_protocol")
    assert found == {
        ("voxmon_http_protocol_errors_total", (("reason", "line_too_long"),)): 2.0,
        ("voxmon_http_protocol_errors_total", (("reason", "bad_header"),)): 1.0,
        ("voxmon_http_protocol_errors_total", (("reason", "bad_request_line"),)): 1.0,
    }


async def test_server_answers_an_unknown_expect_with_a_json_417(start_app: Any) -> None:
    client = await start_app()
    request = (
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    )
    status, body = await exchange(client.port, request)
    assert status == 417
    error = msgspec.json.decode(body)["error"]
    assert error["code"] == "expectation_failed"
    assert error["message"] == "only 'Expect: 100-continue' is supported"
    found = await _metrics(client, "voxmon_ingest_requests")
    assert found[("voxmon_ingest_requests_total", (("code", "417"),))] == 1.0


async def test_server_still_continues_an_expect_100_continue(start_app: Any) -> None:
    client = await start_app()
    body = b'{"event_id": "e1"}'
    head = (
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(head)
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(body)
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400 ")  # the item lacks fields: a per-item 400


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


CHUNKED = (
    b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
)


async def test_server_refuses_an_endless_chunked_body_once_past_the_limit(
    start_app: Any,
) -> None:
    """The body never ends: the 413 comes as soon as max_body_bytes is passed."""
    client = await start_app(max_body_bytes=4096, body_timeout_s=30)
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(CHUNKED + _chunk(b"[" + b" " * 3000) + _chunk(b" " * 2000))
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert msgspec.json.decode(body)["error"] == {
        "code": "payload_too_large",
        "message": "body exceeds max_body_bytes (4096 bytes)",
        "details": [],
    }


async def test_server_refuses_a_chunked_body_one_byte_over_the_limit(start_app: Any) -> None:
    client = await start_app(max_body_bytes=4096)
    items = b"[" + b" " * 4093 + b"{}]"  # 4097 bytes, valid JSON
    status, body = await exchange(client.port, CHUNKED + _chunk(items) + b"0\r\n\r\n", 5)
    assert status == 413
    assert msgspec.json.decode(body)["error"]["code"] == "payload_too_large"


KEEP_ALIVE = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


async def _answer(reader: asyncio.StreamReader) -> bytes:
    """One keep-alive answer to ``KEEP_ALIVE`` (its head and its small JSON body), or b""
    when the server closed the connection instead."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    except asyncio.IncompleteReadError as closed:
        return closed.partial
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return head + await asyncio.wait_for(reader.readexactly(length), 5)


async def test_server_at_the_cap_evicts_never_served_connections_before_a_keep_alive_one(
    start_app: Any,
) -> None:
    """A flood of connections that never send a request cannot push out a scraper's
    keep-alive connection, however old it is: they make room among themselves."""
    client = await start_app(max_connections=3)
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(KEEP_ALIVE)
    assert (await _answer(reader)).startswith(b"HTTP/1.1 200 ")
    flood = [await asyncio.open_connection("127.0.0.1", client.port) for _ in range(10)]
    for flood_reader, _ in flood[:7]:  # evicted whichever policy: the server saw 9 accepts
        assert await asyncio.wait_for(flood_reader.read(), 5) == b""
    writer.write(KEEP_ALIVE)  # the scraper's next request, on the same connection
    assert (await _answer(reader)).startswith(b"HTTP/1.1 200 ")
    writer.close()
    for _, flood_writer in flood:
        flood_writer.close()


def test_a_client_gone_mid_body_is_a_499_not_voxmon_s_error(tmp_path: Path) -> None:
    """A client that closes its connection halfway through its body is counted as 499
    (nginx's "client closed request"), not as a voxmon bug: no 500, no traceback."""
    port, log = free_port(), tmp_path / "voxmon.log"
    with serving(tmp_path / "voxmon.db", port, log=log) as process:
        wait_listening(process, log, port)
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(BUSY)
                time.sleep(0.2)  # the handler is reading the body
        found: dict[Any, float] = {}
        for _ in range(500):
            found = samples(http("GET", f"http://127.0.0.1:{port}/metrics")[2].decode())
            if found.get(("voxmon_ingest_requests_total", (("code", "499"),))) == 3.0:
                break
            time.sleep(0.01)
    assert found[("voxmon_ingest_requests_total", (("code", "499"),))] == 3.0
    assert found[("voxmon_http_internal_errors_total", ())] == 0.0
    assert [line for line in log.read_text().splitlines() if " ERROR " in line] == []
