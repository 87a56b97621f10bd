"""Horizons: what the stored data is complete for, moved only in the transaction of the
ingest or the delete that changes it. Times are UTC epoch ms."""

from __future__ import annotations

from exporter.records import Horizons
from exporter.storage.postgres.connection import Connection

_NAMES = {
    "history_start": "history_start_ms",
    "events_from": "events_from_ms",
    "hourly_from": "hourly_from_ms",
    "daily_from": "daily_from_ms",
}
WATERMARKS = ("events_from", "hourly_from", "daily_from")


class PgHorizons:
    """The horizons rows."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def load(self) -> Horizons:
        rows = self._conn.execute("SELECT name, ms FROM horizons").fetchall()
        return Horizons(**{_NAMES[str(n)]: int(ms) for n, ms in rows if n in _NAMES})

    def extend_history(self, start_ms: int) -> None:
        """History starts at ``start_ms`` or earlier (inside the ingest transaction)."""
        self._conn.execute(
            "INSERT INTO horizons (name, ms) VALUES ('history_start', %s)"
            " ON CONFLICT (name) DO UPDATE SET ms = LEAST(horizons.ms, excluded.ms)",
            (start_ms,),
        )

    def raise_watermark(self, name: str, ms: int) -> None:
        """Data of kind ``name`` before ``ms`` may be gone; a watermark never moves back."""
        if name not in WATERMARKS:
            raise ValueError(name)
        self._conn.execute(
            "INSERT INTO horizons (name, ms) VALUES (%s, %s)"
            " ON CONFLICT (name) DO UPDATE SET ms = GREATEST(horizons.ms, excluded.ms)",
            (name, ms),
        )
