"""The connections the HTTP server holds: who is admitted at the cap (the oldest idle
connection that never delivered a request makes room for a new one, else the oldest idle
one; a new one is refused only when every held connection is busy), protocol errors by
reason (and the text of their answers), the metrics that show both, and the
one-line-a-minute warnings at the cap and when ``accept()`` runs out of descriptors."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp.http_exceptions import BadHttpMessage, BadStatusLine, InvalidHeader, LineTooLong
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.clock import Clock

log = logging.getLogger(__name__)


class Held(Protocol):
    """A held connection, as the cap sees it."""

    @property
    def busy(self) -> bool:
        """A request is in progress (its head has arrived and its handler is running)."""
        ...

    @property
    def served(self) -> bool:
        """At least one request head has arrived on this connection."""
        ...

    def force_close(self) -> None: ...

    def abort(self) -> None:
        """Drop the connection at once, whatever is still unsent."""
        ...


@dataclass(slots=True)
class Connections:
    """Connections held now, oldest first, and counts of those refused and evicted; read by
    ``/metrics``. ``fresh`` holds those not yet seen to have delivered a request, ``held``
    the rest (a connection moves across lazily, when ``admit`` looks at it)."""

    cap: int
    reserve: int = 0
    held: dict[Held, None] = field(default_factory=dict)
    fresh: dict[Held, None] = field(default_factory=dict)
    refused: int = 0
    evicted: int = 0
    accept_errors: int = 0
    send_timeouts: int = 0
    protocol_errors: Counter[str] = field(default_factory=Counter)
    sending: dict[Held, float] = field(default_factory=dict)
    """Connections writing an answer now, each with the loop time by which its client must
    have taken it (``overdue``)."""
    _last_warning: float = float("-inf")
    _last_accept_warning: float = float("-inf")

    @property
    def open(self) -> int:
        return len(self.held) + len(self.fresh)

    def admit(self, connection: Held) -> bool:
        """Hold ``connection``. At the cap, close an idle connection to make room: the
        oldest that never delivered a request (a flood of silent or trickling connections
        makes room among itself), else the oldest idle keep-alive one (it costs its owner a
        reconnect, never another client its turn); False when every one is busy."""
        if self.open >= self.cap:
            victim = self._idle_fresh() or next((c for c in self.held if not c.busy), None)
            if victim is None:
                self.refused += 1
                return False
            self.release(victim)
            self.evicted += 1
            victim.force_close()
        self.fresh[connection] = None
        return True

    def _idle_fresh(self) -> Held | None:
        """The oldest idle connection that has not delivered a request; those found to
        have delivered one (a busy one has) move to ``held``, so each is looked at once."""
        seen: list[Held] = []
        victim = None
        for connection in self.fresh:
            if connection.served or connection.busy:
                seen.append(connection)
            else:
                victim = connection
                break
        for connection in seen:
            del self.fresh[connection]
            self.held[connection] = None
        return victim

    def overdue(self, now: float) -> None:
        """Abort the connections whose answer was not taken by its deadline, each counted
        as a send timeout and forgotten by ``sending``."""
        late = [connection for connection, deadline in self.sending.items() if deadline <= now]
        for connection in late:
            del self.sending[connection]
            connection.abort()
        self.send_timeouts += len(late)

    def release(self, connection: Held) -> None:
        """Forget a closed connection (one evicted or refused is no longer held)."""
        self.held.pop(connection, None)
        self.fresh.pop(connection, None)
        self.sending.pop(connection, None)


class ConnectionCollector(Collector):
    """``voxmon_http_connections`` (open), its cap, connections refused and evicted at the
    cap, accept failures and protocol errors by reason."""

    def __init__(self, state: Connections) -> None:
        self._state = state

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        state = self._state
        yield GaugeMetricFamily(
            "voxmon_http_connections", "HTTP connections open now.", value=state.open
        )
        yield GaugeMetricFamily(
            "voxmon_http_connection_cap",
            "Most connections served at once (max_connections, or the descriptor limit"
            f" less {state.reserve}).",
            value=state.cap,
        )
        yield CounterMetricFamily(
            "voxmon_http_connections_refused",
            "New connections closed at once: the cap was reached and every held connection"
            " was busy.",
            value=state.refused,
        )
        yield CounterMetricFamily(
            "voxmon_http_connections_evicted",
            "Idle connections (keep-alive, or a request head still arriving) closed at the"
            " cap to admit a new one, oldest first.",
            value=state.evicted,
        )
        yield CounterMetricFamily(
            "voxmon_http_send_timeouts",
            "Connections aborted because the client did not take an answer within body_timeout_s.",
            value=state.send_timeouts,
        )
        yield CounterMetricFamily(
            "voxmon_http_accept_errors",
            "Times accepting a connection failed for lack of descriptors or memory.",
            value=state.accept_errors,
        )
        yield _protocol_errors(state)


def _protocol_errors(state: Connections) -> CounterMetricFamily:
    errors = CounterMetricFamily(
        "voxmon_http_protocol_errors",
        "Requests refused before routing (400) because the request line or a header was"
        " malformed or too long, by reason.",
        labels=["reason"],
    )
    for reason, count in sorted(state.protocol_errors.items()):
        errors.add_metric([reason], count)
    return errors


def warn_at_cap(state: Connections, clock: Clock) -> None:
    now = clock.monotonic()
    if now - state._last_warning >= 60:
        state._last_warning = now
        log.warning(
            "connection limit reached (%d open, every one busy): closing new connections"
            " until some finish (%d refused so far; raise the descriptor limit or"
            " max_connections)",
            state.open, state.refused,
        )  # fmt: skip


def quiet_accept_errors(state: Connections, clock: Clock) -> None:
    """asyncio logs a full traceback each time ``accept()`` fails for lack of descriptors
    and retries a second later; under a connection flood that is megabytes of log. voxmon
    counts those failures and logs one line a minute instead; every other loop error still
    goes to asyncio's default handler."""
    loop = asyncio.get_running_loop()

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if context.get("message") == _ACCEPT_FAILED and isinstance(exc, OSError):
            state.accept_errors += 1
            now = clock.monotonic()
            if now - state._last_accept_warning >= 60:
                state._last_accept_warning = now
                log.warning(
                    "cannot accept connections: %s (%d times so far; asyncio retries each"
                    " second; raise the descriptor limit or lower max_connections)",
                    exc.strerror, state.accept_errors,
                )  # fmt: skip
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handle)


_ACCEPT_FAILED = "socket.accept() out of system resource"
"""asyncio's message for an ``accept()`` that failed with EMFILE, ENFILE, ENOBUFS or ENOMEM."""


PROTOCOL_CODES = {
    400: "bad_request",
    413: "payload_too_large",
    431: "headers_too_large",
    500: "internal",
}


def protocol_reason(exc: BaseException | None) -> str:
    """The ``reason`` label of ``voxmon_http_protocol_errors_total`` for a refused head."""
    if isinstance(exc, LineTooLong):
        return "line_too_long"
    if isinstance(exc, BadStatusLine):
        return "bad_request_line"
    if isinstance(exc, InvalidHeader) or (  # llhttp reports a bad header as a plain message
        isinstance(exc, BadHttpMessage) and "header" in exc.message.lower()
    ):
        return "bad_header"
    return "malformed"


def describe_protocol_error(status: int, exc: BaseException | None, message: str | None) -> str:
    """A short reason that never echoes the client's bytes back."""
    if isinstance(exc, LineTooLong):
        return "the request line or a header is too long (over 8190 bytes)"
    if isinstance(exc, BadHttpMessage):
        return f"malformed HTTP request: {exc.message.splitlines()[0].rstrip(':')}"
    if status >= 500:
        return "internal error; see the voxmon log"
    return (message or "bad request").splitlines()[0][:200]
