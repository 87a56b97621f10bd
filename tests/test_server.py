"""The HTTP server voxmon runs on: protocol-level errors as JSON, slow clients reaped,
connections capped below the descriptor limit with a quiet log."""

from __future__ import annotations

import asyncio
import collections
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.scrape import samples
from tests.tools import BUSY_HEAD, exchange, free_port


@pytest.mark.parametrize(
    ("request_bytes", "message"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
         "the request line or a header is too long (over 8190 bytes)"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"b" * 9000 + b"\r\n\r\n",
         "the request line or a header is too long (over 8190 bytes)"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: \x00\r\n\r\n",
         "malformed HTTP request: Invalid header value char"),
        (b"BREW /pot HTCPCP/1.0\r\n\r\n", "malformed HTTP request"),
    ],
)  # fmt: skip
async def test_server_protocol_errors_are_json(
    start_app: Any, request_bytes: bytes, message: str
) -> None:
    client = await start_app()
    status, body = await exchange(client.port, request_bytes)
    assert status == 400
    error = msgspec.json.decode(body)["error"]
    assert error["code"] == "bad_request"
    assert error["message"].startswith(message)
    assert b"aaaa" not in body and b"bbbb" not in body  # the client's bytes are not echoed


async def test_server_reaps_a_client_that_trickles_its_headers(start_app: Any) -> None:
    client = await start_app(header_timeout_s=1)
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    started = time.monotonic()
    for piece in (b"GET /healthz HT", b"TP/1.1\r\nHo"):
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.3)
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, unanswered
    assert 0.9 < time.monotonic() - started < 3
    writer.close()


async def test_server_times_out_a_trickled_body_with_408(start_app: Any) -> None:
    client = await start_app(body_timeout_s=1)
    head = (
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n[{"
    )
    status, body = await exchange(client.port, head, wait_s=5)
    assert status == 408
    assert msgspec.json.decode(body)["error"]["code"] == "request_timeout"


async def test_server_caps_connections_and_counts_refusals(
    start_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = await start_app(max_connections=3)
    held = [await asyncio.open_connection("127.0.0.1", client.port) for _ in range(3)]
    for _, writer in held:  # busy (a body still arriving), so none can be evicted
        writer.write(BUSY_HEAD)
    await asyncio.sleep(0.2)
    refused = [await asyncio.open_connection("127.0.0.1", client.port) for _ in range(4)]
    for reader, writer in refused:
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    for reader, writer in held:  # the server answers our end with its own: slots are free
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    found = samples(await (await client.get("/metrics")).text(), "voxmon_http_conn")
    assert found[("voxmon_http_connections_refused_total", ())] == 4.0
    assert found[("voxmon_http_connection_cap", ())] == 3.0
    warnings = [r for r in caplog.records if "connection limit reached" in r.getMessage()]
    assert len(warnings) == 1  # at most one line a minute, not one per refusal


def _limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


async def test_server_under_300_trickling_connections_at_256_descriptors(tmp_path: Path) -> None:
    """Slowloris against a daemon whose descriptor limit is 256: a normal client is served
    within 20 s and the log stays small (no accept-error storm)."""
    port = free_port()
    log = tmp_path / "voxmon.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "exporter", "serve", "--db", str(tmp_path / "v.db"),
             "--port", str(port)],
            stdout=sink, stderr=subprocess.STDOUT, cwd=tmp_path, preexec_fn=_limit_descriptors,
        )  # fmt: skip
        try:
            await _wait_port(port)
            tricklers = await _open_tricklers(port, 300)
            started = time.monotonic()
            status = await _healthz_within(port, 20.0)
            served_after = time.monotonic() - started
            for writer in tricklers:
                writer.close()
        finally:
            process.terminate()
            process.wait(timeout=30)
    assert status == 200
    size = os.path.getsize(log)
    print(f"/healthz served after {served_after:.1f} s; log {size} bytes")
    lines = collections.Counter(line[:120] for line in log.read_text().splitlines())
    assert size < 20_000, lines.most_common(15)
    assert "Traceback" not in log.read_text(), lines.most_common(15)


async def test_server_counts_accept_failures_and_logs_one_line_a_minute(
    start_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """asyncio reports an accept() that ran out of descriptors through the loop's exception
    handler, with a traceback each time; voxmon counts them and logs one line a minute."""
    client = await start_app()
    loop = asyncio.get_running_loop()
    for _ in range(5):
        loop.call_exception_handler({
            "message": "socket.accept() out of system resource",
            "exception": OSError(24, "Too many open files"),
        })  # fmt: skip
    found = samples(await (await client.get("/metrics")).text(), "voxmon_http_accept")
    assert found[("voxmon_http_accept_errors_total", ())] == 5.0
    lines = [r for r in caplog.records if "cannot accept connections" in r.getMessage()]
    assert [(r.levelname, r.exc_info) for r in lines] == [("WARNING", None)]
    assert "Too many open files (1 times so far" in lines[0].getMessage()


async def _wait_port(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise AssertionError("daemon did not listen")


async def _open_tricklers(port: int, count: int) -> list[asyncio.StreamWriter]:
    writers = []
    for _ in range(count):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            continue
        writer.write(b"GET / HTTP/1.1\r\n")  # and never the rest
        writers.append(writer)
    return writers


async def _healthz_within(port: int, limit_s: float) -> int | None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            status, _ = await exchange(
                port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 2
            )
            if status is not None:
                return status
        except (OSError, TimeoutError):
            pass
        await asyncio.sleep(0.2)
    return None
