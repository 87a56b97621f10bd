"""The HTTP server voxmon runs on: aiohttp's, with slow clients reaped, connections capped
below the descriptor limit, and protocol-level errors (a malformed request line or header,
a line over the size limit) answered with voxmon's JSON error body like every other error.

aiohttp's keep-alive timeout runs from the moment a connection opens and after each
response, and closes a connection whose next request head has not fully arrived by then;
voxmon sets it to ``header_timeout_s``, which reaps a client that trickles its headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
import struct
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from prometheus_client.registry import CollectorRegistry

from exporter.clock import Clock
from exporter.http.connections import (
    PROTOCOL_CODES,
    ConnectionCollector,
    Connections,
    describe_protocol_error,
    protocol_reason,
    quiet_accept_errors,
    warn_at_cap,
)
from exporter.settings import Settings

log = logging.getLogger(__name__)

BACKLOG = 128
"""The listen backlog, which is also how many connections asyncio accepts in one go before
voxmon's handler sees (and can close) any of them."""
DESCRIPTOR_RESERVE = 64 + BACKLOG
"""Descriptors kept free of connections: the database, its WAL and lock files and logs
(about 20 in use), and one accept batch of connections not yet closed at the cap. Under a
descriptor limit below twice this, half the limit is kept free instead (``connection_cap``)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """``header_timeout_s``: a connection must deliver each request head within it (and
    idle keep-alive connections close after it). ``send_timeout_s`` (``body_timeout_s``):
    each answer must be taken by the client within it, else the connection is aborted (a
    client that never reads keeps its connection busy, and busy ones are never evicted).
    ``max_connections``: connections served
    at once; beyond it (or beyond the descriptor limit less ``DESCRIPTOR_RESERVE``) a new
    connection closes the oldest idle one, or is closed at once when every one is busy."""

    header_timeout_s: float = 10.0
    max_connections: int = 1000
    send_timeout_s: float = 30.0

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            float(settings.header_timeout_s),
            settings.max_connections,
            float(settings.body_timeout_s),
        )

    def connection_cap(self) -> int:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return self.max_connections
        return connection_cap(soft, self.max_connections)


def connection_cap(descriptors: int, max_connections: int) -> int:
    """Connections served at once under a descriptor limit: at most ``max_connections``,
    keeping ``reserve(descriptors)`` descriptors free."""
    return max(1, min(max_connections, descriptors - reserve(descriptors)))


def reserve(descriptors: int) -> int:
    """``DESCRIPTOR_RESERVE``, or half the limit when that is less: a limit of 128 once
    left room for one connection, which any flood could take from a scraper at will; at
    half, an accept batch that finds no descriptor fails and asyncio retries it a second
    later (counted, ``voxmon_http_accept_errors_total``), while held connections go on."""
    return min(DESCRIPTOR_RESERVE, descriptors // 2)


def runner_options(limits: Limits) -> dict[str, Any]:
    """Keyword arguments for ``web.AppRunner``: voxmon inflates gzip bodies itself (bounded
    by ``max_body_bytes``), the keep-alive timeout doubles as the header timeout, and after
    answering a request whose body did not arrive (408, 413) the server drains the rest of
    it for at most 2 s, not aiohttp's 10."""
    return {
        "auto_decompress": False,
        "keepalive_timeout": limits.header_timeout_s,
        "lingering_time": 2.0,
    }


class _Server(web.Server):
    """aiohttp's server, handing out ``_Handler``s (installed by ``harden``)."""

    voxmon_connections: Connections
    voxmon_clock: Clock
    voxmon_send_timeout_s: float
    voxmon_sweep: asyncio.TimerHandle | None
    """The next ``_sweep_sends``, scheduled while answers are being written."""
    voxmon_stopping: bool

    def __call__(self) -> RequestHandler:
        return _Handler(self, loop=self._loop, **self._kwargs)

    def expect_taken(self, handler: _Handler) -> None:
        """Give ``handler``'s client the send timeout, from now, to take what is unsent;
        ``_sweep_sends`` resets the connection if it does not."""
        self.voxmon_connections.sending[handler] = self._loop.time() + self.voxmon_send_timeout_s
        if self.voxmon_sweep is None:
            _sweep_sends(self)

    async def shutdown(self, timeout: float | None = None) -> None:
        """Wait for the answers in flight as aiohttp does, while the sweep goes on aborting
        those a client does not take, now every ``STOPPING_SWEEP_S``: a stalled client holds
        shutdown until its send timeout at most (and that sweep), not for aiohttp's
        shutdown timeout twice over."""
        self.voxmon_stopping = True
        if self.voxmon_sweep is not None:  # from now on, swept every STOPPING_SWEEP_S
            self.voxmon_sweep.cancel()
            _sweep_sends(self)
        try:
            await super().shutdown(timeout)
        finally:
            if self.voxmon_sweep is not None:
                self.voxmon_sweep.cancel()
                self.voxmon_sweep = None


_NO_LINGER = struct.pack("ii", 1, 0)
"""``SO_LINGER`` on with a zero timeout: closing resets the connection."""
STOPPING_SWEEP_S = 0.1
"""How often answers in flight are swept once the server is stopping."""


def _sweep_sends(server: _Server) -> None:
    """Abort the connections whose client has not taken its answer within the send
    timeout, then look again in a quarter of it (a second at most), for as long as answers
    are being written: a stalled client loses its connection between one and 1.25 send
    timeouts after its answer began."""
    loop = asyncio.get_running_loop()
    server.voxmon_sweep = None
    try:
        server.voxmon_connections.overdue(loop.time())
    finally:  # an abort that raised must not end every later sweep
        if server.voxmon_connections.sending:
            period = min(1.0, server.voxmon_send_timeout_s / 4)
            if server.voxmon_stopping:
                period = min(period, STOPPING_SWEEP_S)
            server.voxmon_sweep = loop.call_later(period, _sweep_sends, server)


class _Handler(RequestHandler):
    @property
    def busy(self) -> bool:
        """A request's handler is running (its head has arrived); ``Connections.admit``
        never evicts such a connection."""
        return self._request_in_progress

    @property
    def served(self) -> bool:
        """A request head has arrived on this connection (a keep-alive client, not one
        that only connected or trickles); evicted after those that never sent one."""
        return self._request_count > 0

    def connection_made(self, transport: Any) -> None:
        server = self._manager
        super().connection_made(transport)
        assert isinstance(server, _Server)
        if not server.voxmon_connections.admit(self):
            warn_at_cap(server.voxmon_connections, server.voxmon_clock)
            self.force_close()

    async def finish_response(
        self, request: Any, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        """Write the answer within the send timeout, else the connection is aborted (by
        ``_sweep_sends``; aiohttp then stops serving it). A deadline in a dict, not an
        asyncio timeout, which schedules and cancels a timer on every answer: with the
        body read's, those timeouts cost single-event ingest 6-15 % of its rate
        (docs/benchmarks.md, "answers written without a timer each")."""
        server = self._manager
        if not isinstance(server, _Server):  # the client hung up: aiohttp dropped the manager
            return await super().finish_response(request, resp, start_time)
        server.expect_taken(self)
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            server.voxmon_connections.sending.pop(self, None)

    async def start(self) -> None:
        """Serve the connection (aiohttp's loop). Once it ends with the transport closing
        and bytes still unsent (the last answer said ``Connection: close`` and the client
        stopped reading), asyncio would hold the socket until the client reads them,
        which may be never, beyond ``max_connections``: the client gets the send timeout
        to take them, as for any answer."""
        await super().start()
        server, transport = self._manager, self.transport
        if (
            isinstance(server, _Server)
            and transport is not None
            and transport.is_closing()
            and transport.get_write_buffer_size()
        ):
            server.expect_taken(self)

    def force_close(self) -> None:
        """Close now (evicted at the cap, idle past the keep-alive timeout, shutting down):
        with answers still unsent, reset instead, since a close would hold the socket
        until the client reads them, which may be never, beyond ``max_connections``."""
        if self.transport is not None and self.transport.get_write_buffer_size():
            self.abort()
        super().force_close()

    def abort(self) -> None:
        """Reset the connection: with lingering off, the kernel drops the unsent answer at
        once instead of holding it (megabytes a connection) for a client that may never
        read."""
        log.debug("aborted a connection whose client did not read its answer")
        if self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _NO_LINGER)
        self.transport.abort()

    def connection_lost(self, exc: BaseException | None) -> None:
        server = self._manager
        if isinstance(server, _Server):
            server.voxmon_connections.release(self)
        super().connection_lost(exc)

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The JSON error body for errors raised before voxmon's handlers run (malformed
        or oversized request heads); logged at debug level only, since any client can
        cause them, except a 500, which is voxmon's own bug."""
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send the error")
        if status >= 500:
            self.log_exception("error handling a request", exc_info=exc)
        else:
            if isinstance(self._manager, _Server):
                self._manager.voxmon_connections.protocol_errors[protocol_reason(exc)] += 1
            log.debug("refused a malformed request: %s", exc or message)
        code = PROTOCOL_CODES.get(status, "http_error")
        described = describe_protocol_error(status, exc, message)
        body = {"error": {"code": code, "message": described, "details": []}}
        response = web.Response(
            body=msgspec.json.encode(body), status=status, content_type="application/json"
        )
        response.force_close()
        return response


def harden(server: web.Server, limits: Limits, clock: Clock) -> Connections:
    """Make an aiohttp ``Server`` (``runner.server`` after ``setup()``) hand out voxmon's
    connection handler; returns the live connection counts. aiohttp has no hook for the
    handler class or for protocol-level error bodies, so the server's class is swapped for
    a subclass that only overrides the handler factory (``tests/test_server.py`` pins it)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    state = Connections(limits.connection_cap(), reserve(soft))
    server.__class__ = _Server
    assert isinstance(server, _Server)
    server.voxmon_connections = state
    server.voxmon_clock = clock
    server.voxmon_send_timeout_s = limits.send_timeout_s
    server.voxmon_sweep = None
    server.voxmon_stopping = False
    quiet_accept_errors(state, clock)
    return state


def install(
    runner: web.BaseRunner, limits: Limits, clock: Clock, registry: CollectorRegistry
) -> None:
    """After ``runner.setup()``: voxmon's connection handling, and its metrics."""
    assert runner.server is not None, "runner.setup() first"
    registry.register(ConnectionCollector(harden(runner.server, limits, clock)))
