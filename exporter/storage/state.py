"""Persistence of the live state: monotonic counters, maxima, window minute buckets and
the org series order. Written in the same transaction as the events they count."""

from __future__ import annotations

import sqlite3

import msgspec

from exporter.tally import Key, Tally

_encode = msgspec.json.encode
_decode_key = msgspec.json.Decoder(list[str])


def _key(key: Key) -> str:
    return _encode(key).decode()


def save_tally(conn: sqlite3.Connection, tally: Tally) -> None:
    """Add a tally to the persisted state (inside the caller's transaction)."""
    conn.executemany(
        "INSERT INTO live_counters (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
        [(_key(key), value) for key, value in tally.counters.items()],
    )
    conn.executemany(
        "INSERT INTO live_maxima (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
        [(_key(key), value) for key, value in tally.maxima.items()],
    )
    conn.executemany(
        "INSERT INTO window_minutes (scope, minute_ms, counter, value) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (scope, minute_ms, counter) DO UPDATE SET value = value + excluded.value",
        [
            (scope, minute, counter, value)
            for (scope, minute, counter), value in tally.minutes.items()
        ],
    )
    conn.executemany(
        "INSERT OR IGNORE INTO org_series (org_id, seq)"
        " VALUES (?, (SELECT COALESCE(MAX(seq) + 1, 0) FROM org_series))",
        [(org,) for org in tally.new_orgs],
    )


def load_counters(conn: sqlite3.Connection, table: str) -> dict[Key, float]:
    """All rows of ``live_counters`` or ``live_maxima``."""
    if table not in ("live_counters", "live_maxima"):
        raise ValueError(table)
    rows = conn.execute(f"SELECT key, value FROM {table}")
    return {tuple(_decode_key.decode(key)): value for key, value in rows}


def load_minutes(conn: sqlite3.Connection, since_ms: int) -> dict[tuple[str, int, str], float]:
    """Window buckets at or after ``since_ms`` (the current window start)."""
    rows = conn.execute(
        "SELECT scope, minute_ms, counter, value FROM window_minutes WHERE minute_ms >= ?",
        (since_ms,),
    )
    return {(scope, minute, counter): value for scope, minute, counter, value in rows}


def load_orgs(conn: sqlite3.Connection) -> list[str]:
    """Organisations in first-seen order."""
    return [row[0] for row in conn.execute("SELECT org_id FROM org_series ORDER BY seq")]


def prune_minutes(conn: sqlite3.Connection, before_ms: int) -> int:
    """Delete window buckets older than ``before_ms``; returns rows deleted."""
    return conn.execute("DELETE FROM window_minutes WHERE minute_ms < ?", (before_ms,)).rowcount
