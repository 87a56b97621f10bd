"""PostgreSQL schema: versioned migrations tracked in ``schema_version``, applied under an
advisory lock so replicas starting together migrate once. Times are UTC epoch ms (BIGINT),
as on SQLite, so records read back identical. Events are range-partitioned by UTC day
(``exporter.storage.postgres.partitions``); ``event_ids`` is the global dedup key, since a
unique index on a partitioned table must include the partition key."""

from __future__ import annotations

import psycopg
from psycopg.rows import TupleRow

from exporter.storage.rows import INFLIGHT_REBUILD

MIGRATE_LOCK = 0x766F786D6F6E  # "voxmon": one migration at a time per database
LOCK_TIMEOUT = "10s"
"""How long a migration waits for a lock on a table (after the migration lock): a waiting
``ALTER TABLE`` would queue every other reader and writer of that table behind it for as
long as the session holding it lasts."""

_REPLICAS = """
    ALTER TABLE live_counters ADD COLUMN instance TEXT COLLATE "C" NOT NULL DEFAULT '';
    ALTER TABLE live_counters DROP CONSTRAINT live_counters_pkey;
    ALTER TABLE live_counters ADD PRIMARY KEY (instance, key);
    ALTER TABLE live_maxima ADD COLUMN instance TEXT COLLATE "C" NOT NULL DEFAULT '';
    ALTER TABLE live_maxima DROP CONSTRAINT live_maxima_pkey;
    ALTER TABLE live_maxima ADD PRIMARY KEY (instance, key);
    ALTER TABLE job_runs ADD COLUMN instance TEXT COLLATE "C" NOT NULL DEFAULT '';
    CREATE TABLE live_journal (
        id BIGSERIAL PRIMARY KEY,
        instance TEXT COLLATE "C" NOT NULL,
        at_ms BIGINT NOT NULL,
        body BYTEA NOT NULL
    );
    CREATE INDEX live_journal_by_time ON live_journal (at_ms);
    CREATE TABLE live_journal_horizon (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        pruned_through BIGINT NOT NULL
    );
    INSERT INTO live_journal_horizon VALUES (1, 0);
"""
"""Replicas (docs/scale-out.md): counters and maxima per instance (rows written before are
instance ''), who ran each job, and the shared change journal (``exporter.live.journal``)."""

_LZ4 = """
    DO $$ BEGIN
        EXECUTE 'ALTER TABLE snapshots ALTER COLUMN parts SET COMPRESSION lz4,'
            ' ALTER COLUMN end_to_end SET COMPRESSION lz4';
    EXCEPTION WHEN feature_not_supported OR syntax_error THEN NULL;
    END $$;
"""
"""Snapshot parts and digests written from now on are compressed with lz4, which the
server unpacks faster than its default pglz: a day's 4,824 hourly rows read in 48 -> 37 ms
(docs/decisions/snapshot-compression.md). Values stored before keep pglz (both read the
same). A server built without lz4 (or older than 14) keeps pglz for everything."""

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE SEQUENCE events_seq;
    CREATE TABLE events (
        seq BIGINT NOT NULL DEFAULT nextval('events_seq'),
        event_id TEXT COLLATE "C" NOT NULL,
        event_type TEXT COLLATE "C" NOT NULL,
        ts_ms BIGINT NOT NULL,
        received_ms BIGINT NOT NULL,
        artifact_id TEXT COLLATE "C",
        org_id TEXT COLLATE "C",
        voice_note_id TEXT COLLATE "C",
        coach_user_id TEXT COLLATE "C",
        stage TEXT COLLATE "C",
        duration_ms DOUBLE PRECISION,
        duration_source TEXT COLLATE "C",
        previous_status TEXT COLLATE "C",
        new_status TEXT COLLATE "C",
        error_code TEXT COLLATE "C",
        error_message TEXT COLLATE "C",
        ai_cost_usd DOUBLE PRECISION,
        confidence DOUBLE PRECISION,
        claim_count BIGINT,
        entity_count BIGINT,
        auto_resolved_count BIGINT,
        disambiguation_count BIGINT,
        draft_count BIGINT,
        metadata TEXT COLLATE "C"
    ) PARTITION BY RANGE (ts_ms);
    CREATE INDEX events_by_time ON events (ts_ms);
    CREATE INDEX events_by_seq ON events (seq);
    CREATE INDEX events_by_artifact ON events (artifact_id, event_type, ts_ms);
    CREATE INDEX events_by_org ON events (org_id, ts_ms);
    CREATE INDEX events_by_received ON events (received_ms, seq);
    CREATE INDEX events_by_org_received ON events (org_id, received_ms, seq);
    CREATE INDEX events_by_type_received ON events (event_type, received_ms, seq);
    CREATE TABLE event_ids (
        event_id TEXT COLLATE "C" PRIMARY KEY,
        ts_ms BIGINT NOT NULL
    );
    CREATE INDEX event_ids_by_time ON event_ids (ts_ms);
    CREATE TABLE live_counters (key TEXT COLLATE "C" PRIMARY KEY, value DOUBLE PRECISION NOT NULL);
    CREATE TABLE live_maxima (key TEXT COLLATE "C" PRIMARY KEY, value DOUBLE PRECISION NOT NULL);
    CREATE TABLE window_minutes (
        scope TEXT COLLATE "C" NOT NULL,
        minute_ms BIGINT NOT NULL,
        counter TEXT COLLATE "C" NOT NULL,
        value DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (scope, minute_ms, counter)
    );
    CREATE INDEX window_minutes_by_minute ON window_minutes (minute_ms);
    CREATE TABLE org_series (
        seq BIGSERIAL PRIMARY KEY,
        org_id TEXT COLLATE "C" NOT NULL UNIQUE
    );
    CREATE TABLE snapshots (
        period TEXT COLLATE "C" NOT NULL CHECK (period IN ('hourly', 'daily')),
        period_start_ms BIGINT NOT NULL,
        scope TEXT COLLATE "C" NOT NULL,
        artifacts_received BIGINT NOT NULL,
        artifacts_completed BIGINT NOT NULL,
        artifacts_failed BIGINT NOT NULL,
        ai_cost_usd DOUBLE PRECISION NOT NULL,
        end_to_end BYTEA,
        parts BYTEA NOT NULL,
        UNIQUE (period, period_start_ms, scope)
    );
    CREATE INDEX snapshots_by_scope ON snapshots (period, scope, period_start_ms);
    CREATE TABLE dirty_windows (
        period TEXT COLLATE "C" NOT NULL,
        period_start_ms BIGINT NOT NULL,
        generation BIGINT NOT NULL DEFAULT 1,
        PRIMARY KEY (period, period_start_ms)
    );
    CREATE TABLE job_runs (
        job TEXT COLLATE "C" PRIMARY KEY,
        last_run_ms BIGINT NOT NULL,
        last_result TEXT COLLATE "C" NOT NULL,
        last_error TEXT COLLATE "C",
        last_success_ms BIGINT,
        duration_s DOUBLE PRECISION NOT NULL,
        rows_written BIGINT NOT NULL,
        windows TEXT COLLATE "C" NOT NULL,
        trigger TEXT COLLATE "C" NOT NULL DEFAULT 'schedule',
        successes BIGINT NOT NULL DEFAULT 0,
        failures BIGINT NOT NULL DEFAULT 0,
        seconds_total DOUBLE PRECISION NOT NULL DEFAULT 0
    );
    CREATE TABLE org_names (
        org_id TEXT COLLATE "C" PRIMARY KEY,
        name TEXT COLLATE "C" NOT NULL,
        updated_ms BIGINT NOT NULL
    );
    CREATE TABLE artifacts (
        artifact_id TEXT COLLATE "C" PRIMARY KEY,
        org_id TEXT COLLATE "C",
        status TEXT COLLATE "C" NOT NULL CHECK (status IN ('in_flight', 'completed', 'failed')),
        current_stage TEXT COLLATE "C",
        last_event_type TEXT COLLATE "C" NOT NULL,
        last_event_ms BIGINT NOT NULL,
        first_event_ms BIGINT NOT NULL,
        failed_stage TEXT COLLATE "C",
        error_code TEXT COLLATE "C",
        awaiting_disambiguation BOOLEAN NOT NULL DEFAULT FALSE
    );
    CREATE INDEX artifacts_by_status ON artifacts (status, artifact_id);
    CREATE INDEX artifacts_by_last_event ON artifacts (last_event_ms);
    CREATE INDEX artifacts_by_org ON artifacts (org_id, status, artifact_id);
    CREATE TABLE horizons (name TEXT COLLATE "C" PRIMARY KEY, ms BIGINT NOT NULL);
    CREATE TABLE heartbeat (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        beat_ms BIGINT NOT NULL
    );
    """,
    _REPLICAS,
    f"""
    CREATE TABLE inflight_minutes (
        minute_ms BIGINT NOT NULL,
        stage TEXT COLLATE "C" NOT NULL,
        awaiting BOOLEAN NOT NULL,
        notes BIGINT NOT NULL,
        PRIMARY KEY (minute_ms, stage, awaiting)
    );
    {INFLIGHT_REBUILD};
    """,
    # The org breakdown's totals read only this index (an index-only scan of the range's
    # entries) instead of every wide snapshot row: 43-53 -> 23-27 ms for 90,000 daily rows.
    """
    CREATE INDEX snapshots_totals ON snapshots (period, period_start_ms)
        INCLUDE (scope, artifacts_received, artifacts_completed, artifacts_failed, ai_cost_usd);
    """,
    _LZ4,
)


def migrate(conn: psycopg.Connection[TupleRow]) -> int:
    """Apply every migration newer than ``schema_version``; returns the version. Each
    migration and its version bump commit together; a migration kept waiting for a table
    longer than ``LOCK_TIMEOUT`` fails the start with a message that says so."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        version = int(row[0]) if row and row[0] is not None else 0
        if version > len(MIGRATIONS):
            raise RuntimeError(
                f"database schema version {version} is newer than this voxmon ({len(MIGRATIONS)})"
            )
        conn.execute("SELECT set_config('lock_timeout', %s, true)", (LOCK_TIMEOUT,))
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            try:
                with conn.transaction():
                    conn.execute(script.encode())
                    conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (number,))
            except psycopg.errors.LockNotAvailable as exc:
                raise psycopg.OperationalError(
                    f"migration {number} waited {LOCK_TIMEOUT} for a lock on a table another"
                    " session holds (a long query, an open transaction, pg_dump): nothing was"
                    " changed; start voxmon again once that session has ended"
                ) from exc
    return len(MIGRATIONS)
