"""Loading the persisted live state at start: counters, maxima, the current window's
minute buckets, the capped organisation order, the notes in flight, and the window's
latency digests rebuilt from the stored events of the last 60 minutes."""

from __future__ import annotations

from typing import Any

from exporter.live.state import LiveState
from exporter.live.windows import window_bounds
from exporter.storage.base import Runner, Store


async def restore(live: LiveState, runner: Runner, now_ms: int) -> None:
    """Read the state in one hop to the database thread, then apply it here."""
    since_ms, capacity = window_bounds(now_ms).start_ms, live.orgs.capacity
    counters, maxima, minutes, (orgs, seen), in_flight, latencies = await runner.run(
        _read, since_ms, capacity, live.latency.bucketing
    )
    live.load(counters, maxima, minutes, orgs, seen, latencies)
    live.inflight.apply(in_flight)


def _read(
    store: Store, since_ms: int, capacity: int, bucketing: tuple[float, float]
) -> tuple[Any, ...]:
    with store.read_transaction():
        return (
            store.live.load_counters("live_counters"),
            store.live.load_counters("live_maxima"),
            store.live.load_minutes(since_ms),
            store.live.load_orgs(capacity),
            store.artifacts.load_in_flight(),
            store.live.load_latency(since_ms, *bucketing),
        )
