"""Event rows: insert, dedup lookups, start-time lookups for derived durations, retention
deletes, a note's timeline and the recent-events feed."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from exporter.model import Event
from exporter.records import EventFilter, FeedPosition
from exporter.storage.rows import EVENT_COLUMNS, event_row
from exporter.storage.sqlite.horizons import SqliteHorizons
from exporter.timestamps import HOUR_MS

_INSERT = (
    f"INSERT INTO events ({EVENT_COLUMNS}) VALUES ({', '.join('?' * 23)})"
    " ON CONFLICT (event_id) DO NOTHING"
)
_CHUNK = 500  # stays under SQLite's host-parameter limit
_encode = msgspec.json.encode


class SqliteEvents:
    """Event rows: insert, dedup lookups, start-time lookups, retention deletes."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def existing_ids(self, event_ids: Sequence[str]) -> set[str]:
        """Which of ``event_ids`` are already stored."""
        found: set[str] = set()
        for start in range(0, len(event_ids), _CHUNK):
            chunk = event_ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                f"SELECT event_id FROM events WHERE event_id IN ({marks})", chunk
            )
            found.update(row[0] for row in rows)
        return found

    def latest_starts(
        self, lookups: Sequence[tuple[str, str, int]]
    ) -> dict[tuple[str, str, int], int]:
        """For each ``(artifact_id, event_type, at_ms)``, the time of the artifact's latest such
        event at or before ``at_ms``; one statement for the whole commit (absent = none)."""
        if not lookups:
            return {}
        rows = self._conn.execute(
            "SELECT w.key, MAX(e.ts_ms) FROM json_each(?) AS w JOIN events AS e"
            " ON e.artifact_id = w.value ->> 0 AND e.event_type = w.value ->> 1"
            " AND e.ts_ms <= w.value ->> 2 GROUP BY w.key",
            (_encode(list(lookups)).decode(),),
        )
        return {lookups[index]: int(ts) for index, ts in rows if ts is not None}

    def insert(self, events: Iterable[Event], received_ms: int) -> int:
        """Insert events (their ids distinct) in the caller's transaction, skipping any whose
        id is already stored; returns how many were stored. Only when that is all of them
        does the history start extend to the hour of the oldest (the writer removes the
        stored ids first, or undoes the insert: ``insert_new``)."""
        fresh = list(events)
        rows = [event_row(event, received_ms) for event in fresh]
        stored: int = self._conn.executemany(_INSERT, rows).rowcount if rows else 0
        if fresh and stored == len(fresh):
            oldest = min(event.ts_ms for event in fresh)
            SqliteHorizons(self._conn).extend_history(oldest - oldest % HOUR_MS)
        return stored

    def insert_new(self, events: Sequence[Event], received_ms: int) -> bool:
        """``insert`` if none of the events' ids is stored yet (their ids are distinct);
        otherwise store nothing and return False. The unique key decides, in the insert
        itself, so the common case costs no lookup of its own; the rare other case deletes
        the rows it just added (rowids past the largest before it)."""
        (last,) = self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
        if self.insert(events, received_ms) == len(events):
            return True
        self._conn.execute("DELETE FROM events WHERE seq > ?", (last,))
        return False

    def count(self) -> int:
        """Number of stored events."""
        return int(self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def delete_before(self, cutoff_ms: int, limit: int) -> int:
        """Delete at most ``limit`` events with event time strictly before ``cutoff_ms``;
        returns how many went (the caller loops, one short transaction per batch)."""
        return self._conn.execute(
            "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE ts_ms < ? LIMIT ?)",
            (cutoff_ms, limit),
        ).rowcount

    def count_before(self, cutoff_ms: int) -> int:
        """Events with event time strictly before ``cutoff_ms`` (for dry runs)."""
        row = self._conn.execute(
            "SELECT COUNT(*) FROM events WHERE ts_ms < ?", (cutoff_ms,)
        ).fetchone()
        return int(row[0])

    def timeline(self, artifact_id: str, limit: int) -> list[dict[str, Any]]:
        """The note's stored events, ascending by event time then arrival."""
        cursor = self._conn.execute(
            "SELECT event_id, event_type, ts_ms, org_id, voice_note_id, coach_user_id, stage,"
            " duration_ms, duration_source, previous_status, new_status, error_code,"
            " error_message, metadata FROM events WHERE artifact_id = ?"
            " ORDER BY ts_ms, seq LIMIT ?",
            (artifact_id, limit),
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def recent(
        self, filters: EventFilter, before: FeedPosition | None, limit: int
    ) -> list[dict[str, Any]]:
        """Events newest received first (``received_ms``, then ``seq``, descending), strictly
        before ``before``, within ``filters``; each row carries its ``seq`` and ``received_ms``
        (the next page's position). An index per filter keeps the walk a range scan."""
        sql = _FEED + " WHERE received_ms >= ? AND ts_ms >= ?"
        args: list[object] = [filters.since_ms, filters.since_ms]
        for column in ("org_id", "event_type", "artifact_id"):
            value = getattr(filters, column)
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        if before is not None:
            sql += " AND (received_ms, seq) < (?, ?)"
            args += [before.received_ms, before.seq]
        cursor = self._conn.execute(
            sql + " ORDER BY received_ms DESC, seq DESC LIMIT ?", (*args, limit)
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]


_FEED = (
    "SELECT seq, received_ms, event_id, event_type, ts_ms, artifact_id, org_id, voice_note_id,"
    " coach_user_id, stage, duration_ms, duration_source, previous_status, new_status,"
    " error_code, error_message, metadata FROM events"
)
