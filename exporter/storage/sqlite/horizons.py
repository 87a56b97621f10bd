"""Horizons: what the stored data is complete for. Each moves only in the transaction of the
ingest or the delete that changes it, so a rollup reading them in its own transaction sees
them agree with the rows it reads. Times are UTC epoch ms."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

NONE = -(2**62)
"""A watermark no cleanup has set yet: nothing was pruned."""


@dataclass(frozen=True, slots=True)
class Horizons:
    """``history_start_ms``: start of the hour of the oldest event ever accepted (None: no
    event yet). ``events_from_ms``: hour-aligned; raw events before it may have been pruned.
    ``hourly_from_ms``: day-aligned; hourly snapshots before it may have been pruned.
    ``daily_from_ms``: daily snapshots before it may have been pruned."""

    history_start_ms: int | None = None
    events_from_ms: int = NONE
    hourly_from_ms: int = NONE
    daily_from_ms: int = NONE

    @property
    def accept_from_ms(self) -> int:
        """Events before it can no longer reach every snapshot: their hour's raw events,
        their day's hourly rows or their day's daily row were pruned (ingest refuses them)."""
        daily = self.daily_from_ms
        if daily != NONE:
            daily = -(-daily // _DAY_MS) * _DAY_MS  # a day starting before it was pruned
        return max(self.events_from_ms, self.hourly_from_ms, daily)


_DAY_MS = 86_400_000
_NAMES = {
    "history_start": "history_start_ms",
    "events_from": "events_from_ms",
    "hourly_from": "hourly_from_ms",
    "daily_from": "daily_from_ms",
}
WATERMARKS = ("events_from", "hourly_from", "daily_from")


def load(conn: sqlite3.Connection) -> Horizons:
    rows = conn.execute("SELECT name, ms FROM horizons")
    return Horizons(**{_NAMES[name]: ms for name, ms in rows if name in _NAMES})


def extend_history(conn: sqlite3.Connection, start_ms: int) -> None:
    """History starts at ``start_ms`` or earlier (inside the ingest transaction)."""
    conn.execute(
        "INSERT INTO horizons (name, ms) VALUES ('history_start', ?)"
        " ON CONFLICT (name) DO UPDATE SET ms = min(ms, excluded.ms)",
        (start_ms,),
    )


def raise_watermark(conn: sqlite3.Connection, name: str, ms: int) -> None:
    """Data of kind ``name`` before ``ms`` may be gone (in the delete's own transaction);
    a watermark never moves back."""
    if name not in WATERMARKS:
        raise ValueError(name)
    conn.execute(
        "INSERT INTO horizons (name, ms) VALUES (?, ?)"
        " ON CONFLICT (name) DO UPDATE SET ms = max(ms, excluded.ms)",
        (name, ms),
    )
