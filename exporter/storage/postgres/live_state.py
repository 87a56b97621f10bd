"""Persistence of the live state: monotonic counters, maxima, window minute buckets and
the organisations' first-seen order, written in the transaction of the events they count."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from exporter.live.families import Key
from exporter.live.latency import MinuteLatency
from exporter.live.tally import Tally
from exporter.records import LatencyRow
from exporter.storage.postgres.connection import Connection
from exporter.storage.postgres.snapshots import bucket_params, bucketed_durations
from exporter.timestamps import MINUTE_MS

_encode = msgspec.json.encode
_decode_key = msgspec.json.Decoder(list[str])


def _key(key: Key) -> str:
    return _encode(key).decode()


class PgLiveState:
    """The persisted live state: counters and maxima per replica (``instance``), and what
    replicas share: window minutes, first-seen organisations and the change journal."""

    def __init__(self, conn: Connection, instance: str) -> None:
        self._conn = conn
        self._instance = instance

    def save_tally(self, tally: Tally) -> int:
        """Add a tally to the persisted state (inside the caller's transaction); returns how
        many of its ``new_orgs`` were first seen."""
        for sql, rows in (
            (
                "INSERT INTO live_counters (instance, key, value) SELECT %s, * FROM"
                " unnest(%s::text[], %s::float8[]) ON CONFLICT (instance, key) DO UPDATE"
                " SET value = live_counters.value + excluded.value",
                tally.counters.items(),
            ),
            (
                "INSERT INTO live_maxima (instance, key, value) SELECT %s, * FROM"
                " unnest(%s::text[], %s::float8[]) ON CONFLICT (instance, key) DO UPDATE"
                " SET value = GREATEST(live_maxima.value, excluded.value)",
                tally.maxima.items(),
            ),
        ):
            pairs = list(rows)
            if pairs:
                keys, values = [_key(k) for k, _ in pairs], [v for _, v in pairs]
                self._conn.execute(sql, (self._instance, keys, values))
        minutes = list(tally.minutes.items())
        if minutes:
            self._conn.execute(
                "INSERT INTO window_minutes (scope, minute_ms, counter, value)"
                " SELECT * FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::float8[])"
                " ON CONFLICT (scope, minute_ms, counter) DO UPDATE"
                " SET value = window_minutes.value + excluded.value",
                [list(column) for column in zip(*((*k, v) for k, v in minutes), strict=True)],
            )
        return self.register_orgs(tally.new_orgs)

    def register_orgs(self, orgs: Iterable[str]) -> int:
        """Append organisations not stored yet to the first-seen order, in the order given;
        returns how many were new."""
        ordered = list(dict.fromkeys(orgs))
        if not ordered:
            return 0
        return self._conn.execute(
            "INSERT INTO org_series (org_id) SELECT org_id FROM unnest(%s::text[])"
            " WITH ORDINALITY AS given (org_id, n) ORDER BY n ON CONFLICT (org_id) DO NOTHING",
            (ordered,),
        ).rowcount

    def load_counters(self, table: str) -> dict[Key, float]:
        """This replica's rows of ``live_counters`` or ``live_maxima``."""
        if table not in ("live_counters", "live_maxima"):
            raise ValueError(table)
        rows = self._conn.execute(
            f"SELECT key, value FROM {table} WHERE instance = %s", (self._instance,)
        ).fetchall()
        return {tuple(_decode_key.decode(str(key))): float(value) for key, value in rows}

    def load_minutes(self, since_ms: int) -> dict[tuple[str, int, str], float]:
        """Window buckets at or after ``since_ms`` (the current window start)."""
        rows = self._conn.execute(
            "SELECT scope, minute_ms, counter, value FROM window_minutes WHERE minute_ms >= %s",
            (since_ms,),
        ).fetchall()
        return {(str(s), int(m), str(c)): float(v) for s, m, c, v in rows}

    def load_latency(self, since_ms: int, gamma: float, floor_ms: float) -> list[MinuteLatency]:
        """Durations of latency-bearing events at or after ``since_ms`` (future minutes
        included), bucketed per minute and event type as the digest buckets them (the query
        of ``PgSnapshots.latency_rows``, grouped by minute instead of organisation)."""
        rows = self._conn.execute(
            bucketed_durations(f"ts_ms - ts_ms %% {MINUTE_MS}", "TRUE"),
            bucket_params(gamma, floor_ms, since_ms),
        ).fetchall()
        return [MinuteLatency(int(minute), LatencyRow(None, *rest)) for minute, *rest in rows]

    def load_orgs(self, limit: int) -> tuple[list[str], int]:
        """The first ``limit`` organisations in first-seen order, and how many are stored."""
        rows = self._conn.execute(
            "SELECT org_id FROM org_series ORDER BY seq LIMIT %s", (limit,)
        ).fetchall()
        count = self._conn.execute("SELECT COUNT(*) FROM org_series").fetchone()
        return [str(row[0]) for row in rows], int(count[0]) if count else 0

    def prune_minutes(self, before_ms: int) -> int:
        """Delete window buckets older than ``before_ms``; returns rows deleted."""
        return self._conn.execute(
            "DELETE FROM window_minutes WHERE minute_ms < %s", (before_ms,)
        ).rowcount

    def journal(self, body: bytes, at_ms: int) -> int | None:
        """Append one commit's shared changes (``exporter.live.journal``); returns its id."""
        row = self._conn.execute(
            "INSERT INTO live_journal (instance, at_ms, body) VALUES (%s, %s, %s) RETURNING id",
            (self._instance, at_ms, body),
        ).fetchone()
        return int(row[0]) if row else None

    def journal_since(self, after_id: int) -> tuple[int, list[tuple[int, bytes]]]:
        """The id through which the journal was pruned, and the other replicas' entries
        after ``after_id`` in id (commit) order."""
        pruned = self._conn.execute("SELECT pruned_through FROM live_journal_horizon").fetchone()
        rows = self._conn.execute(
            "SELECT id, body FROM live_journal WHERE id > %s AND instance <> %s ORDER BY id",
            (after_id, self._instance),
        ).fetchall()
        return int(pruned[0]) if pruned else 0, [(int(i), bytes(b)) for i, b in rows]

    def journal_head(self) -> int:
        """The newest entry's id (0: none): what a restored state already holds."""
        row = self._conn.execute(
            "SELECT GREATEST((SELECT max(id) FROM live_journal),"
            " (SELECT pruned_through FROM live_journal_horizon))"
        ).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def prune_journal(self, before_ms: int) -> None:
        """Delete entries older than ``before_ms``, raising the pruned-through id (a replica
        behind it reloads its state from the tables instead)."""
        self._conn.execute(
            "WITH gone AS (DELETE FROM live_journal WHERE at_ms < %s RETURNING id)"
            " UPDATE live_journal_horizon SET pruned_through ="
            " GREATEST(pruned_through, (SELECT max(id) FROM gone))"
            " WHERE EXISTS (SELECT 1 FROM gone)",
            (before_ms,),
        )
