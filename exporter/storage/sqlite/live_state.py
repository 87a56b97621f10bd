"""Persistence of the live state: monotonic counters, maxima, window minute buckets and
the organisations' first-seen order. Written in the same transaction as the events they
count."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable

import msgspec

from exporter.catalog import LATENCY_TYPES
from exporter.live.families import Key
from exporter.live.latency import MinuteLatency
from exporter.live.tally import Tally
from exporter.records import LatencyRow
from exporter.timestamps import MINUTE_MS

MINUTES_FIRST = """
    CREATE TABLE window_minutes_by_time (
        scope TEXT NOT NULL,
        minute_ms INTEGER NOT NULL,
        counter TEXT NOT NULL,
        value REAL NOT NULL,
        PRIMARY KEY (minute_ms, scope, counter)
    ) WITHOUT ROWID;
    INSERT INTO window_minutes_by_time (scope, minute_ms, counter, value)
        SELECT scope, minute_ms, counter, value FROM window_minutes;
    DROP TABLE window_minutes;
    ALTER TABLE window_minutes_by_time RENAME TO window_minutes;
"""
"""The migration that keys the window's buckets minute first (decisions/window-minutes-order.md):
a commit's rows are those of the few minutes its events fall in, so they sit together at
the end of the table instead of at the end of every organisation's run, and the commit
writes fewer pages to the log; ``load_minutes`` and ``prune_minutes`` read by minute, so the
primary key serves them and the minute index goes with the old table."""
_encode = msgspec.json.encode
_decode_key = msgspec.json.Decoder(list[str])


def _key(key: Key) -> str:
    return _encode(key).decode()


class SqliteLiveState:
    """The persisted live state: counters, maxima, window minutes, first-seen organisations."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def save_tally(self, tally: Tally) -> int:
        """Add a tally to the persisted state (inside the caller's transaction); returns how
        many of its ``new_orgs`` were first seen (see ``register_orgs``)."""
        self._conn.executemany(
            "INSERT INTO live_counters (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
            [(_key(key), value) for key, value in tally.counters.items()],
        )
        self._conn.executemany(
            "INSERT INTO live_maxima (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
            [(_key(key), value) for key, value in tally.maxima.items()],
        )
        self._conn.executemany(
            "INSERT INTO window_minutes (scope, minute_ms, counter, value) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (scope, minute_ms, counter) DO UPDATE SET value = value + excluded.value",
            [
                (scope, minute, counter, value)
                for (scope, minute, counter), value in tally.minutes.items()
            ],
        )
        return self.register_orgs(tally.new_orgs)

    def register_orgs(self, orgs: Iterable[str]) -> int:
        """Append organisations not stored yet to the first-seen order, in the order given;
        returns how many were new. ``seq`` is the table's rowid, so each org costs one probe of
        the ``org_id`` index and one append at the end of the table, however many are stored."""
        cursor = self._conn.executemany(
            "INSERT OR IGNORE INTO org_series (org_id) VALUES (?)", [(org,) for org in orgs]
        )
        return max(cursor.rowcount, 0)

    def load_counters(self, table: str) -> dict[Key, float]:
        """All rows of ``live_counters`` or ``live_maxima``."""
        if table not in ("live_counters", "live_maxima"):
            raise ValueError(table)
        rows = self._conn.execute(f"SELECT key, value FROM {table}")
        return {tuple(_decode_key.decode(key)): value for key, value in rows}

    def load_minutes(self, since_ms: int) -> dict[tuple[str, int, str], float]:
        """Window buckets at or after ``since_ms`` (the current window start)."""
        rows = self._conn.execute(
            "SELECT scope, minute_ms, counter, value FROM window_minutes WHERE minute_ms >= ?",
            (since_ms,),
        )
        return {(scope, minute, counter): value for scope, minute, counter, value in rows}

    def load_latency(self, since_ms: int, gamma: float, floor_ms: float) -> list[MinuteLatency]:
        """Durations of latency-bearing events at or after ``since_ms`` (the window start,
        future minutes included), bucketed in SQL per minute and event type exactly as the
        digest buckets them in Python (the query of ``SqliteSnapshots.latency_rows``, grouped
        by minute instead of organisation). ``+event_type``: found by time, not by type
        (by type it read every stored hour's latency-bearing events)."""
        marks = ",".join("?" * len(LATENCY_TYPES))
        rows = self._conn.execute(
            "SELECT m, event_type, CASE WHEN d > 0 THEN CASE"
            " WHEN b > pow(?, r) THEN r + 1 WHEN b <= pow(?, r - 1) THEN r - 1 ELSE r END END,"
            " COUNT(*), SUM(d), MIN(d), MAX(d) FROM (SELECT m, event_type, d, b,"
            " CAST(ceil(ln(b) * ?) AS INTEGER) AS r FROM (SELECT ts_ms - ts_ms % ? AS m,"
            " event_type, duration_ms AS d, MAX(duration_ms, ?) AS b FROM events"
            " WHERE ts_ms >= ? AND duration_ms IS NOT NULL"
            f" AND +event_type IN ({marks}))) GROUP BY 1, 2, 3",
            (gamma, gamma, 1.0 / math.log(gamma), MINUTE_MS, floor_ms, since_ms, *LATENCY_TYPES),
        )
        return [MinuteLatency(minute, LatencyRow(None, *rest)) for minute, *rest in rows]

    def load_orgs(self, limit: int) -> tuple[list[str], int]:
        """The first ``limit`` organisations in first-seen order, and how many are stored."""
        rows = self._conn.execute("SELECT org_id FROM org_series ORDER BY seq LIMIT ?", (limit,))
        first = [row[0] for row in rows]
        (count,) = self._conn.execute("SELECT COUNT(*) FROM org_series").fetchone()
        return first, count

    def prune_minutes(self, before_ms: int) -> int:
        """Delete window buckets older than ``before_ms``; returns rows deleted."""
        return self._conn.execute(
            "DELETE FROM window_minutes WHERE minute_ms < ?", (before_ms,)
        ).rowcount

    def journal(self, body: bytes, at_ms: int) -> int | None:
        """No journal: one daemon per SQLite file, nothing to share (``None``)."""
        return None

    def journal_since(self, after_id: int) -> tuple[int, list[tuple[int, bytes]]]:
        return 0, []

    def journal_head(self) -> int:
        return 0

    def prune_journal(self, before_ms: int) -> None:
        return None
