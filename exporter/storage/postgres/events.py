"""Event rows: insert (dedup by ``event_ids`` with ``ON CONFLICT DO NOTHING``), dedup
lookups, start-time lookups for derived durations, retention (whole day partitions dropped,
the partly expired day deleted in batches), a note's timeline and the recent-events feed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg

from exporter.model import Event
from exporter.records import EventFilter, FeedPosition
from exporter.storage.postgres.connection import Connection
from exporter.storage.postgres.horizons import PgHorizons
from exporter.storage.postgres.partitions import Partitions
from exporter.storage.rows import EVENT_COLUMNS, event_row
from exporter.timestamps import HOUR_MS

_INSERT = f"INSERT INTO events ({EVENT_COLUMNS}) VALUES ({', '.join(['%s'] * 23)})"
_COPY = f"COPY events ({EVENT_COLUMNS}) FROM STDIN"
LATEST_STARTS = (
    "SELECT w.n, x.ts_ms FROM unnest(%s::text[], %s::text[], %s::bigint[])"
    " WITH ORDINALITY AS w (artifact_id, event_type, at_ms, n) CROSS JOIN LATERAL"
    " (SELECT e.ts_ms FROM events AS e WHERE e.artifact_id = w.artifact_id"
    " AND e.event_type = w.event_type AND e.ts_ms <= w.at_ms ORDER BY e.ts_ms DESC LIMIT 1) AS x"
)
"""Each lookup's latest start, one probe of the (artifact, type, time) index per lookup and
day partition, newest day first. The subquery runs once per lookup, so its cost follows the
lookups, not the stored events. The join with ``MAX`` it replaced could be planned as a
hash join over every stored event: with day partitions never analyzed (autovacuum off, or
a new day before its first analyze) the server chose that, and a commit of 2,000 events
spent 139-230 us an event in it instead of 1-2 (decisions/start-lookups.md)."""


def _copy(cursor: psycopg.Cursor[Any], events: Sequence[Event], received_ms: int) -> None:
    """COPY the events' rows (2.4 times executemany's rate on this schema)."""
    if events:
        with cursor.copy(_COPY) as copy:
            for event in events:
                copy.write_row(event_row(event, received_ms))


class PgEvents:
    """Event rows: insert, dedup lookups, start-time lookups, retention deletes."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.partitions = Partitions(conn)

    def existing_ids(self, event_ids: Sequence[str]) -> set[str]:
        """Which of ``event_ids`` are already stored."""
        if not event_ids:
            return set()
        rows = self._conn.execute(
            "SELECT event_id FROM event_ids WHERE event_id = ANY(%s)", (list(event_ids),)
        )
        return {str(row[0]) for row in rows.fetchall()}

    def latest_starts(
        self, lookups: Sequence[tuple[str, str, int]]
    ) -> dict[tuple[str, str, int], int]:
        """For each ``(artifact_id, event_type, at_ms)``, the time of the artifact's latest such
        event at or before ``at_ms``; one statement for the whole commit (absent = none)."""
        if not lookups:
            return {}
        rows = self._conn.execute(
            LATEST_STARTS, [list(column) for column in zip(*lookups, strict=True)]
        )
        return {lookups[int(n) - 1]: int(ts) for n, ts in rows}

    def insert(self, events: Iterable[Event], received_ms: int) -> int:
        """Insert new events and extend the history start to the hour of the oldest, in the
        caller's transaction; an id stored meanwhile (another writer) is skipped. Returns
        how many were stored."""
        fresh = list(events)
        if not fresh:
            return 0
        self.partitions.ensure({event.ts_ms for event in fresh})
        new = self._conn.execute(
            "INSERT INTO event_ids (event_id, ts_ms) SELECT * FROM unnest(%s::text[],"
            " %s::bigint[]) ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            ([e.event_id for e in fresh], [e.ts_ms for e in fresh]),
        ).fetchall()
        kept = {str(row[0]) for row in new}
        with self._conn.cursor() as cursor:
            _copy(cursor, [e for e in fresh if e.event_id in kept], received_ms)
        self._extend_history(fresh)
        return len(kept)

    def insert_new(self, events: Sequence[Event], received_ms: int) -> bool:
        """``insert`` if none of the events' ids is stored yet (their ids are distinct):
        COPY of the ids and the rows in a savepoint; otherwise store nothing and return
        False. The dedup key decides, so the common case costs no lookup of its own."""
        if not events:
            return True
        self.partitions.ensure({event.ts_ms for event in events})
        try:
            with self._conn.transaction(), self._conn.cursor() as cursor:  # a savepoint
                with cursor.copy("COPY event_ids (event_id, ts_ms) FROM STDIN") as copy:
                    for event in events:
                        copy.write_row((event.event_id, event.ts_ms))
                _copy(cursor, events, received_ms)
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.table_name != "event_ids":
                raise
            return False
        self._extend_history(events)
        return True

    def _extend_history(self, events: Sequence[Event]) -> None:
        oldest = min(event.ts_ms for event in events)
        PgHorizons(self._conn).extend_history(oldest - oldest % HOUR_MS)

    def count(self) -> int:
        """Number of stored events."""
        row = self._conn.execute("SELECT COUNT(*) FROM events").fetchone()
        return int(row[0]) if row else 0

    def delete_before(self, cutoff_ms: int, limit: int) -> int:
        """Delete events with event time strictly before ``cutoff_ms``: every day partition
        wholly before it is dropped at once; otherwise at most ``limit`` rows of the partly
        expired day go. Returns how many went (the caller loops until 0)."""
        dropped = self.partitions.drop_before(cutoff_ms)
        if dropped:
            return dropped
        return self._conn.execute(
            "WITH gone AS (DELETE FROM events WHERE ts_ms < %s AND seq IN"
            " (SELECT seq FROM events WHERE ts_ms < %s LIMIT %s) RETURNING event_id)"
            " DELETE FROM event_ids WHERE event_id IN (SELECT event_id FROM gone)",
            (cutoff_ms, cutoff_ms, limit),
        ).rowcount

    def count_before(self, cutoff_ms: int) -> int:
        """Events with event time strictly before ``cutoff_ms`` (for dry runs)."""
        row = self._conn.execute(
            "SELECT COUNT(*) FROM events WHERE ts_ms < %s", (cutoff_ms,)
        ).fetchone()
        return int(row[0]) if row else 0

    def timeline(self, artifact_id: str, limit: int) -> list[dict[str, Any]]:
        """The note's stored events, ascending by event time then arrival."""
        return self._dicts(
            "SELECT event_id, event_type, ts_ms, org_id, voice_note_id, coach_user_id, stage,"
            " duration_ms, duration_source, previous_status, new_status, error_code,"
            " error_message, metadata FROM events WHERE artifact_id = %s"
            " ORDER BY ts_ms, seq LIMIT %s",
            (artifact_id, limit),
        )

    def recent(
        self, filters: EventFilter, before: FeedPosition | None, limit: int
    ) -> list[dict[str, Any]]:
        """Events newest received first (``received_ms``, then ``seq``, descending), strictly
        before ``before``, within ``filters``; each row carries its ``seq`` and
        ``received_ms`` (the next page's position)."""
        sql = _FEED + " WHERE received_ms >= %s AND ts_ms >= %s"
        args: list[object] = [filters.since_ms, filters.since_ms]
        for column in ("org_id", "event_type", "artifact_id"):
            value = getattr(filters, column)
            if value is not None:
                sql += f" AND {column} = %s"
                args.append(value)
        if before is not None:
            sql += " AND (received_ms, seq) < (%s, %s)"
            args += [before.received_ms, before.seq]
        return self._dicts(sql + " ORDER BY received_ms DESC, seq DESC LIMIT %s", (*args, limit))

    def _dicts(self, sql: str, args: Sequence[object]) -> list[dict[str, Any]]:
        with self._conn.cursor() as cursor:
            cursor.execute(sql, args)
            names = [d.name for d in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


_FEED = (
    "SELECT seq, received_ms, event_id, event_type, ts_ms, artifact_id, org_id, voice_note_id,"
    " coach_user_id, stage, duration_ms, duration_source, previous_status, new_status,"
    " error_code, error_message, metadata FROM events"
)
