"""Schema migrations, applied in order and tracked by ``PRAGMA user_version``."""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        event_type TEXT NOT NULL,
        ts_ms INTEGER NOT NULL,
        received_ms INTEGER NOT NULL,
        artifact_id TEXT,
        org_id TEXT,
        voice_note_id TEXT,
        coach_user_id TEXT,
        stage TEXT,
        duration_ms REAL,
        duration_source TEXT,
        previous_status TEXT,
        new_status TEXT,
        error_code TEXT,
        error_message TEXT,
        ai_cost_usd REAL,
        confidence REAL,
        claim_count INTEGER,
        entity_count INTEGER,
        auto_resolved_count INTEGER,
        disambiguation_count INTEGER,
        draft_count INTEGER,
        metadata TEXT
    );
    CREATE INDEX events_by_time ON events (ts_ms);
    CREATE INDEX events_by_artifact ON events (artifact_id, event_type, ts_ms);
    CREATE INDEX events_by_org ON events (org_id, ts_ms);

    CREATE TABLE live_counters (
        key TEXT PRIMARY KEY,
        value REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE live_maxima (
        key TEXT PRIMARY KEY,
        value REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE window_minutes (
        scope TEXT NOT NULL,
        minute_ms INTEGER NOT NULL,
        counter TEXT NOT NULL,
        value REAL NOT NULL,
        PRIMARY KEY (scope, minute_ms, counter)
    ) WITHOUT ROWID;
    CREATE TABLE org_series (
        org_id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
)


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration newer than the file's ``user_version``; returns the version.
    Each migration and its version bump commit together."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    return len(MIGRATIONS)
