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
    """The persisted live state: counters, maxima, window minutes, first-seen organisations."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def save_tally(self, tally: Tally) -> int:
        """Add a tally to the persisted state (inside the caller's transaction); returns how
        many of its ``new_orgs`` were first seen."""
        for sql, rows in (
            (
                "INSERT INTO live_counters (key, value) SELECT * FROM unnest(%s::text[],"
                " %s::float8[]) ON CONFLICT (key) DO UPDATE"
                " SET value = live_counters.value + excluded.value",
                tally.counters.items(),
            ),
            (
                "INSERT INTO live_maxima (key, value) SELECT * FROM unnest(%s::text[],"
                " %s::float8[]) ON CONFLICT (key) DO UPDATE"
                " SET value = GREATEST(live_maxima.value, excluded.value)",
                tally.maxima.items(),
            ),
        ):
            pairs = list(rows)
            if pairs:
                self._conn.execute(sql, ([_key(k) for k, _ in pairs], [v for _, v in pairs]))
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
        """All rows of ``live_counters`` or ``live_maxima``."""
        if table not in ("live_counters", "live_maxima"):
            raise ValueError(table)
        rows = self._conn.execute(f"SELECT key, value FROM {table}").fetchall()
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
