"""Loading the persisted live state at start (and when a replica fell behind the shared
journal): this replica's counters and maxima, the current window's minute buckets, the
capped organisation order, the window's latency digests rebuilt from
the stored events of the last 60 minutes, and the journal id all of it includes."""

from __future__ import annotations

from typing import Any

from exporter.live.state import LiveState
from exporter.live.windows import window_bounds
from exporter.storage.base import Reader, Store


async def restore(live: LiveState, runner: Reader, now_ms: int) -> None:
    """Read the state in one hop to the database thread, then apply it here."""
    since_ms, capacity = window_bounds(now_ms).start_ms, live.orgs.capacity
    counters, maxima, minutes, (orgs, seen), latencies, head = await runner.run(
        _read, since_ms, capacity, live.latency.bucketing
    )
    live.load(counters, maxima, minutes, orgs, seen, latencies)
    live.applied_id = head


def _read(
    store: Store, since_ms: int, capacity: int, bucketing: tuple[float, float]
) -> tuple[Any, ...]:
    with store.read_transaction():
        return (
            store.live.load_counters("live_counters"),
            store.live.load_counters("live_maxima"),
            store.live.load_minutes(since_ms),
            store.live.load_orgs(capacity),
            store.live.load_latency(since_ms, *bucketing),
            store.live.journal_head(),
        )
