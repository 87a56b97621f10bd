"""Horizons: what the stored data is complete for. Each moves only in the transaction of the
ingest or the delete that changes it, so a rollup reading them in its own transaction sees
them agree with the rows it reads. Times are UTC epoch ms."""

from __future__ import annotations

import sqlite3

from exporter.records import Horizons

_NAMES = {
    "history_start": "history_start_ms",
    "events_from": "events_from_ms",
    "hourly_from": "hourly_from_ms",
    "daily_from": "daily_from_ms",
}
WATERMARKS = ("events_from", "hourly_from", "daily_from")


class SqliteHorizons:
    """The horizons rows."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def load(self) -> Horizons:
        rows = self._conn.execute("SELECT name, ms FROM horizons")
        return Horizons(**{_NAMES[name]: ms for name, ms in rows if name in _NAMES})

    def extend_history(self, start_ms: int) -> None:
        """History starts at ``start_ms`` or earlier (inside the ingest transaction)."""
        self._conn.execute(
            "INSERT INTO horizons (name, ms) VALUES ('history_start', ?)"
            " ON CONFLICT (name) DO UPDATE SET ms = min(ms, excluded.ms)",
            (start_ms,),
        )

    def raise_watermark(self, name: str, ms: int) -> None:
        """Data of kind ``name`` before ``ms`` may be gone (in the delete's own transaction);
        a watermark never moves back."""
        if name not in WATERMARKS:
            raise ValueError(name)
        self._conn.execute(
            "INSERT INTO horizons (name, ms) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET ms = max(ms, excluded.ms)",
            (name, ms),
        )
