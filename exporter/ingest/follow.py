"""Following the shared change journal (``exporter.live.journal``): every half second a
replica on shared storage applies the other replicas' commits it has not seen, so its
windows, organisations and notes in flight are every replica's. A replica that fell behind
the pruned part of the journal reloads its live state from the tables instead."""

from __future__ import annotations

import asyncio
import logging

from exporter.clock import Clock
from exporter.live import journal
from exporter.live.restore import restore
from exporter.live.state import LiveState
from exporter.storage.base import Reader, Store
from exporter.timestamps import datetime_to_ms

log = logging.getLogger(__name__)

FOLLOW_INTERVAL_S = 0.5
"""How stale another replica's commits may be here (the realtime API's cache, in effect)."""


class Follower:
    """Applies other replicas' journal entries; ``lock`` is the writer's (a commit and its
    outcome never interleave with a catch-up, so entries apply in commit order)."""

    def __init__(self, live: LiveState, reads: Reader, clock: Clock, lock: asyncio.Lock) -> None:
        self._live, self._reads, self._clock, self._lock = live, reads, clock, lock
        self._failing = False

    async def run(self) -> None:
        while True:
            await asyncio.sleep(FOLLOW_INTERVAL_S)
            try:
                await self.catch_up()
            except Exception as exc:  # storage trouble: the probe reports it; keep trying
                if not self._failing:
                    log.warning("shared live state not refreshed: %s", exc)
                self._failing = True
            else:
                if self._failing:
                    log.info("shared live state refreshed again")
                self._failing = False

    async def catch_up(self) -> int:
        """Apply what other replicas committed since the last entry applied here; returns
        how many entries were applied."""
        async with self._lock:
            live = self._live
            pruned, entries = await self._reads.run(_since, live.applied_id)
            now_ms = datetime_to_ms(self._clock.now())
            if pruned > live.applied_id:
                log.warning(
                    "shared live state: entries %d..%d were pruned before this replica applied"
                    " them; reloading the live state from storage",
                    live.applied_id + 1,
                    pruned,
                )
                await restore(live, self._reads, now_ms)
                return 0
            for entry_id, entry in entries:
                live.apply_entry(entry_id, entry, now_ms)
                live.recount_inflight |= bool(entry.inflight)  # an earlier version's commit
            return len(entries)


def _since(store: Store, after: int) -> tuple[int, list[tuple[int, journal.Entry]]]:
    with store.read_transaction():
        pruned, rows = store.live.journal_since(after)
    return pruned, [(entry_id, journal.decode(body)) for entry_id, body in rows]
