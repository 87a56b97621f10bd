"""Schema migrations, applied in order and tracked by ``PRAGMA user_version``."""

from __future__ import annotations

import sqlite3

from exporter.storage.rows import INFLIGHT_REBUILD
from exporter.storage.sqlite.live_state import MINUTES_FIRST

# Snapshot rows are large (msgpack parts with digests), so ``snapshots`` is a rowid table
# with the small columns first and ``end_to_end`` before ``parts``: reading the totals or
# the end-to-end digest never walks the parts' overflow pages.
_HOUR = 3_600_000
_DAY = 86_400_000

# Horizons (storage/horizons.py) record what the stored data is complete for; a database
# from before them gets conservative values from its contents: history starts at its
# oldest event or snapshot, and once a cleanup has run, the partly pruned hour (day) at the
# edge is treated as pruned. Dirty marks gain a generation so that only the rollup run that
# read a mark can clear it.
_HORIZONS = f"""
    CREATE TABLE horizons (
        name TEXT PRIMARY KEY,
        ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO horizons (name, ms)
    SELECT 'history_start', MIN(start) FROM (
        SELECT MIN(ts_ms) / {_HOUR} * {_HOUR} AS start FROM events
        UNION ALL SELECT MIN(period_start_ms) FROM snapshots
    ) WHERE start IS NOT NULL HAVING COUNT(start) > 0;
    INSERT INTO horizons (name, ms)
    SELECT 'events_from', CASE WHEN EXISTS (SELECT 1 FROM job_runs WHERE job = 'cleanup-events')
        THEN (MIN(ts_ms) + {_HOUR - 1}) / {_HOUR} * {_HOUR}
        ELSE MIN(ts_ms) / {_HOUR} * {_HOUR} END
    FROM events HAVING COUNT(*) > 0;
    INSERT OR IGNORE INTO horizons (name, ms)
    SELECT 'events_from', MAX(period_start_ms) + {_HOUR} FROM snapshots
    WHERE period = 'hourly' HAVING COUNT(*) > 0;
    INSERT INTO horizons (name, ms)
    SELECT 'hourly_from', (MIN(period_start_ms) + {_DAY - 1}) / {_DAY} * {_DAY} FROM snapshots
    WHERE period = 'hourly'
    AND EXISTS (SELECT 1 FROM job_runs WHERE job = 'cleanup-snapshots') HAVING COUNT(*) > 0;
    INSERT INTO horizons (name, ms)
    SELECT 'daily_from', MIN(period_start_ms) FROM snapshots
    WHERE period = 'daily'
    AND EXISTS (SELECT 1 FROM job_runs WHERE job = 'cleanup-snapshots') HAVING COUNT(*) > 0;
    ALTER TABLE dirty_windows ADD COLUMN generation INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE job_runs ADD COLUMN successes INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE job_runs ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE job_runs ADD COLUMN seconds_total REAL NOT NULL DEFAULT 0;
    ALTER TABLE job_runs ADD COLUMN trigger TEXT NOT NULL DEFAULT 'schedule';
    UPDATE job_runs SET successes = (last_result = 'success'),
        failures = (last_result = 'failure'), seconds_total = duration_s;
"""

# The first-seen order of organisations becomes the rowid, so registering one is an append
# (the old ``MAX(seq) + 1`` scanned the whole table for every new org). Old positions keep
# their order. Pruning window buckets by minute gets an index instead of a table scan.
_ORG_ORDER = """
    CREATE TABLE org_order (
        seq INTEGER PRIMARY KEY,
        org_id TEXT NOT NULL UNIQUE
    );
    INSERT INTO org_order (org_id) SELECT org_id FROM org_series ORDER BY seq, org_id;
    DROP TABLE org_series;
    ALTER TABLE org_order RENAME TO org_series;
    CREATE INDEX window_minutes_by_minute ON window_minutes (minute_ms);
"""

# The operator surfaces (issue 12): the recent-events feed walks events newest received
# first, whole or by organisation or event type (each index ends with the rowid, so the
# order is (received_ms, seq) and the retention bound is a range on it); artifact listings
# filter by organisation.
_FEED = """
    CREATE INDEX events_by_received ON events (received_ms);
    CREATE INDEX events_by_org_received ON events (org_id, received_ms);
    CREATE INDEX events_by_type_received ON events (event_type, received_ms);
    CREATE INDEX artifacts_by_org ON artifacts (org_id, status, artifact_id);
"""

# Issue 14: the duration histograms moved from 16 hand-picked bounds to log-spaced ones
# (families.STAGE_BUCKETS_S, END_TO_END_BUCKETS_S). Persisted buckets are stored by index,
# so old-layout rows would be read against the new bounds: they are retired whole (buckets,
# sums and counts of both families), which Prometheus sees as one counter reset of those
# series and rate() absorbs. Every other live counter is kept.
_RETIRE_OLD_HISTOGRAMS = """
    DELETE FROM live_counters WHERE json_extract(key, '$[0]') IN (
        'stage_duration_bucket', 'stage_duration_sum', 'stage_duration_count',
        'e2e_duration_bucket', 'e2e_duration_sum', 'e2e_duration_count'
    );
"""

# Issue 15: the organisation breakdown reads every returned org's end-to-end digests over
# the range. With them in an index ordered by (period, scope, start), one org's 90 days are
# a few adjacent index pages instead of 90 table rows on as many pages.
_END_TO_END_BY_SCOPE = """
    CREATE INDEX snapshots_end_to_end ON snapshots (period, scope, period_start_ms, end_to_end);
"""

# Issue 15: the org breakdown's totals read per organisation (snapshots.ORG_TOTALS). In
# (period, start, scope) order SQLite had to sort the range's 90,000 entries by organisation
# in a temporary B-tree; in (period, scope, start) order each org's range is one run of
# entries and the organisations are found by seeking from one to the next.
_TOTALS_BY_SCOPE = """
    DROP INDEX snapshots_totals;
    CREATE INDEX snapshots_totals ON snapshots (
        period, scope, period_start_ms,
        artifacts_received, artifacts_completed, artifacts_failed, ai_cost_usd
    );
"""
_SNAPSHOT_WRITES = """
    CREATE TABLE snapshot_writes (
        period TEXT PRIMARY KEY,
        generation INTEGER NOT NULL
    ) WITHOUT ROWID;
"""
"""How many times each period's snapshots were written or pruned: the org breakdown keeps
its count of a period's stored orgs while this stays (``sqlite/org_totals.py``)."""

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
    """
    CREATE TABLE snapshots (
        period TEXT NOT NULL CHECK (period IN ('hourly', 'daily')),
        period_start_ms INTEGER NOT NULL,
        scope TEXT NOT NULL,
        artifacts_received INTEGER NOT NULL,
        artifacts_completed INTEGER NOT NULL,
        artifacts_failed INTEGER NOT NULL,
        ai_cost_usd REAL NOT NULL,
        end_to_end BLOB,
        parts BLOB NOT NULL,
        UNIQUE (period, period_start_ms, scope)
    );
    CREATE INDEX snapshots_by_scope ON snapshots (period, scope, period_start_ms);
    CREATE TABLE dirty_windows (
        period TEXT NOT NULL,
        period_start_ms INTEGER NOT NULL,
        PRIMARY KEY (period, period_start_ms)
    ) WITHOUT ROWID;
    CREATE TABLE job_runs (
        job TEXT PRIMARY KEY,
        last_run_ms INTEGER NOT NULL,
        last_result TEXT NOT NULL,
        last_error TEXT,
        last_success_ms INTEGER,
        duration_s REAL NOT NULL,
        rows_written INTEGER NOT NULL,
        windows TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    """
    CREATE TABLE org_names (
        org_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        updated_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE artifacts (
        artifact_id TEXT PRIMARY KEY,
        org_id TEXT,
        status TEXT NOT NULL CHECK (status IN ('in_flight', 'completed', 'failed')),
        current_stage TEXT,
        last_event_type TEXT NOT NULL,
        last_event_ms INTEGER NOT NULL,
        first_event_ms INTEGER NOT NULL,
        failed_stage TEXT,
        error_code TEXT,
        awaiting_disambiguation INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE INDEX artifacts_by_status ON artifacts (status, artifact_id);
    CREATE INDEX artifacts_by_last_event ON artifacts (last_event_ms);
    """,
    """
    CREATE INDEX snapshots_totals ON snapshots (
        period, period_start_ms, scope,
        artifacts_received, artifacts_completed, artifacts_failed, ai_cost_usd
    );
    """,
    _HORIZONS,
    _ORG_ORDER,
    _FEED,
    _RETIRE_OLD_HISTOGRAMS,
    "ALTER TABLE job_runs ADD COLUMN instance TEXT NOT NULL DEFAULT '';",
    f"""
    CREATE TABLE inflight_minutes (
        minute_ms INTEGER NOT NULL,
        stage TEXT NOT NULL,
        awaiting INTEGER NOT NULL,
        notes INTEGER NOT NULL,
        PRIMARY KEY (minute_ms, stage, awaiting)
    ) WITHOUT ROWID;
    {INFLIGHT_REBUILD};
    """,
    _END_TO_END_BY_SCOPE,
    _TOTALS_BY_SCOPE,
    _SNAPSHOT_WRITES,
    MINUTES_FIRST,
)


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration newer than the file's ``user_version``; returns the version.
    Each migration and its version bump commit together, in a write transaction that reads
    the version again first: a process starting beside one that is migrating waits for it
    (``busy_timeout``), then skips what it applied instead of applying it twice."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    while True:
        _check_version(version)
        if version == len(MIGRATIONS):
            return len(MIGRATIONS)
        conn.execute("BEGIN IMMEDIATE")
        try:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if 0 <= version < len(MIGRATIONS):
                for statement in statements(MIGRATIONS[version]):
                    conn.execute(statement)
                version += 1
                conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # a failed COMMIT may have rolled back already
                conn.execute("ROLLBACK")
            raise


def _check_version(version: int) -> None:
    if version < 0:  # not a version voxmon writes; the loop would not end on it
        raise RuntimeError(f"database schema version {version} is not one voxmon writes")
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"database schema version {version} is newer than this voxmon ({len(MIGRATIONS)})"
        )


def statements(script: str) -> list[str]:
    """The SQL statements of ``script``, each whole (a ``;`` inside a literal or a trigger
    body does not end one)."""
    found, pending = [], ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                found.append(pending)
            pending = ""
    return found
