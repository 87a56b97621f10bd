"""Daily partitions of ``events``: created on demand for every day a commit writes (and the
day after it, so a new day's first events find theirs ready), dropped whole by event
retention. Partition DDL runs inside the write transaction, which holds the write lock."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from psycopg.rows import TupleRow

DAY_MS = 86_400_000


def name_of(day_start_ms: int) -> str:
    """``events_YYYYMMDD`` for the UTC day starting at ``day_start_ms``."""
    return "events_" + datetime.fromtimestamp(day_start_ms / 1000, UTC).strftime("%Y%m%d")


class Partitions:
    """The day partitions one connection knows to exist (a cache over ``pg_inherits``)."""

    def __init__(self, conn: psycopg.Connection[TupleRow]) -> None:
        self._conn = conn
        self._known: set[int] | None = None

    def existing(self) -> dict[int, str]:
        """Day start -> partition name, ascending, as the catalog says now."""
        rows = self._conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'events'::regclass"
        ).fetchall()
        days = {}
        for (name,) in rows:
            stamp = datetime.strptime(str(name)[len("events_") :], "%Y%m%d").replace(tzinfo=UTC)
            days[int(stamp.timestamp()) * 1000] = str(name)
        return dict(sorted(days.items()))

    def ensure(self, ts_values: set[int]) -> None:
        """Create the partitions of the days of ``ts_values`` and of each following day."""
        if self._known is None:
            self._known = set(self.existing())
        wanted = {ts - ts % DAY_MS for ts in ts_values}
        wanted |= {day + DAY_MS for day in wanted}
        for day in sorted(wanted - self._known):
            self._conn.execute(
                f"CREATE TABLE IF NOT EXISTS {name_of(day)} PARTITION OF events"
                f" FOR VALUES FROM ({day}) TO ({day + DAY_MS})"
            )
            self._known.add(day)

    def forget(self) -> None:
        """Read the catalog again at the next ``ensure`` (after a rollback)."""
        self._known = None

    def drop_before(self, cutoff_ms: int) -> int:
        """Drop every partition whose whole day ends at or before ``cutoff_ms`` (with its
        dedup keys); returns the events they held."""
        gone = 0
        for day, name in self.existing().items():
            if day + DAY_MS > cutoff_ms:
                break
            row = self._conn.execute(f"SELECT count(*) FROM {name}").fetchone()
            gone += int(row[0]) if row else 0
            self._conn.execute(
                "DELETE FROM event_ids WHERE ts_ms >= %s AND ts_ms < %s", (day, day + DAY_MS)
            )
            self._conn.execute(f"DROP TABLE {name}")
            if self._known is not None:
                self._known.discard(day)
        return gone
