"""The connections the HTTP server holds: who is admitted at the cap (the oldest idle
connection that never delivered a request makes room for a new one, else the oldest idle
one; a new one is refused only when every held connection is busy), protocol errors by
reason, and the metrics that show both."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


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

    def overdue(self, now: float) -> list[Held]:
        """Connections whose answer was not taken by its deadline: each is aborted, counted
        as a send timeout and forgotten by ``sending``."""
        late = [connection for connection, deadline in self.sending.items() if deadline <= now]
        for connection in late:
            del self.sending[connection]
            connection.abort()
        self.send_timeouts += len(late)
        return late

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
