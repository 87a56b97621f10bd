"""The connections the HTTP server holds: who is admitted at the cap (the oldest idle
connection makes room for a new one; a new one is refused only when every held connection
is busy), protocol errors by reason, and the metrics that show both."""

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

    def force_close(self) -> None: ...


@dataclass(slots=True)
class Connections:
    """Connections held now, oldest first, and counts of those refused and evicted; read by
    ``/metrics``. ``admit`` and ``release`` keep ``open`` equal to ``len(held)``."""

    cap: int
    reserve: int = 0
    held: dict[Held, None] = field(default_factory=dict)
    refused: int = 0
    evicted: int = 0
    accept_errors: int = 0
    protocol_errors: Counter[str] = field(default_factory=Counter)
    _last_warning: float = float("-inf")
    _last_accept_warning: float = float("-inf")

    @property
    def open(self) -> int:
        return len(self.held)

    def admit(self, connection: Held) -> bool:
        """Hold ``connection``. At the cap, close the oldest idle connection to make room
        (an idle keep-alive or a trickled request head costs its owner a reconnect, never
        another client its turn); False when every held connection is busy."""
        if len(self.held) >= self.cap:
            victim = next((c for c in self.held if not c.busy), None)
            if victim is None:
                self.refused += 1
                return False
            del self.held[victim]
            self.evicted += 1
            victim.force_close()
        self.held[connection] = None
        return True

    def release(self, connection: Held) -> None:
        """Forget a closed connection (one evicted or refused is no longer held)."""
        self.held.pop(connection, None)


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
            "voxmon_http_accept_errors",
            "Times accepting a connection failed for lack of descriptors or memory.",
            value=state.accept_errors,
        )
        errors = CounterMetricFamily(
            "voxmon_http_protocol_errors",
            "Requests refused before routing (400) because the request line or a header was"
            " malformed or too long, by reason.",
            labels=["reason"],
        )
        for reason, count in sorted(state.protocol_errors.items()):
            errors.add_metric([reason], count)
        yield errors
