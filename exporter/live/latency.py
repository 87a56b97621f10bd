"""The live state's latency window, as an interface: per series (each processing stage and
end to end, platform scope) and minute of event time, the durations that finished in the
60-minute live window, so ``/metrics`` and the realtime API report p50/p95/p99 over the last
60 minutes within 1 % of exact. The digest behind it lives in ``rollup.live_latency``; the
wiring hands one to ``LiveState`` (only the wiring imports rollup).

Not persisted: the events table already holds every duration, so a restart rebuilds the
window from the stored events of the last 60 minutes, bucketed in SQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from exporter.catalog import EVENT_TYPES
from exporter.live.tally import END_TO_END_SERIES
from exporter.records import LatencyRow

QUANTILES: tuple[float, ...] = (0.5, 0.95, 0.99)
"""The quantiles reported for each series."""
PERCENTILE_LABELS: dict[float, str] = {0.5: "p50", 0.95: "p95", 0.99: "p99"}
"""``percentile`` label value of each quantile (promtool reserves ``quantile`` for
summaries)."""


@dataclass(frozen=True, slots=True)
class MinuteLatency:
    """SQL-bucketed durations of one event type in one minute (a restore row)."""

    minute_ms: int
    row: LatencyRow


def series_of(event_type: str) -> str:
    """The window series an event type's durations count in: its stage, or end to end."""
    return EVENT_TYPES[event_type].stage or END_TO_END_SERIES


class LatencyWindow(Protocol):
    """Durations per series and minute over the sliding window."""

    @property
    def bucketing(self) -> tuple[float, float]:
        """``(gamma, floor_ms)`` of the digest, so storage buckets durations as it does."""
        ...

    def apply(self, observations: Iterable[tuple[str, int, float]]) -> None:
        """Add ``(series, minute_ms, duration_ms)`` observations (a committed tally)."""
        ...

    def load(self, rows: Iterable[MinuteLatency]) -> None:
        """Add SQL-bucketed rows (the restore path)."""
        ...

    def quantiles(self, series: str, now_ms: int) -> tuple[int, dict[float, float]]:
        """How many durations the window holding ``now_ms`` has for ``series``, and its
        ``QUANTILES`` in seconds (empty when none)."""
        ...

    def prune(self, now_ms: int) -> None:
        """Drop minutes that have left the window."""
        ...

    def clear(self) -> None:
        """Forget every minute (before a restore)."""
        ...
