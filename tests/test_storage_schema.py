"""Schema migrations: a database from before the horizons gets conservative ones; one from
before the rowid org order keeps its first-seen order."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from exporter.live.tally import Tally
from exporter.records import NONE, EventFilter, FeedPosition
from exporter.storage.sqlite.schema import MIGRATIONS, migrate, statements
from tests.tools import database_at, open_store

HOUR, DAY = 3_600_000, 86_400_000
T = 1_795_860_000_000  # 2026-11-28T10:00:00Z


def old_database(path: Path, cleaned: bool) -> None:
    """A database at the schema version before horizons, as the previous release left it:
    zero rows 47 h before the first event, events partly pruned at a cutoff mid-hour."""
    conn = database_at(path, 4)
    conn.execute(
        "INSERT INTO events (event_id, event_type, ts_ms, received_ms) VALUES ('e1', 'x', ?, 0)",
        (T + 37 * 60_000,),
    )
    for start, period in ((T - 47 * HOUR, "hourly"), (T - 2 * DAY, "daily")):
        conn.execute(
            "INSERT INTO snapshots (period, period_start_ms, scope, artifacts_received,"
            " artifacts_completed, artifacts_failed, ai_cost_usd, parts) VALUES (?, ?, '', 0, 0,"
            " 0, 0, x'')",
            (period, start),
        )
    if cleaned:
        for job in ("cleanup-events", "cleanup-snapshots"):
            conn.execute(
                "INSERT INTO job_runs VALUES (?, 0, 'success', NULL, 0, 0.1, 0, '-')", (job,)
            )
    conn.close()


@pytest.mark.parametrize(
    ("cleaned", "events_from", "hourly_from", "daily_from"),
    [
        (False, T, NONE, NONE),  # never pruned: the first event's hour
        (True, T + HOUR, T - 47 * HOUR - (T - 47 * HOUR) % DAY + DAY, T - 2 * DAY),
    ],
)
def test_schema_migration_sets_conservative_horizons(
    tmp_path: Path, cleaned: bool, events_from: int, hourly_from: int, daily_from: int
) -> None:
    old_database(tmp_path / "voxmon.db", cleaned)
    conn = open_store(tmp_path / "voxmon.db")
    found = conn.horizons.load()
    assert (found.history_start_ms, found.events_from_ms) == (T - 2 * DAY, events_from)
    assert (found.hourly_from_ms, found.daily_from_ms) == (hourly_from, daily_from)
    runs = conn.connection.execute(
        "SELECT job, successes, failures, trigger FROM job_runs"
    ).fetchall()
    assert sorted(runs) == (
        [("cleanup-events", 1, 0, "schedule"), ("cleanup-snapshots", 1, 0, "schedule")]
        if cleaned
        else []
    )
    conn.close()


def test_schema_migration_keeps_org_order_and_appends_without_a_scan(tmp_path: Path) -> None:
    """org_series from before the rowid order: the first-seen order survives (not the name
    order), new orgs append after it, and neither registering nor pruning scans."""
    path = tmp_path / "voxmon.db"
    conn = database_at(path, 5)
    conn.executemany(
        "INSERT INTO org_series (org_id, seq) VALUES (?, ?)",
        [("zeta", 0), ("alpha", 1), ("mid", 2)],
    )
    conn.close()
    conn = open_store(path)
    assert conn.live.load_orgs(10) == (["zeta", "alpha", "mid"], 3)
    assert conn.write(lambda c: c.live.register_orgs(["new", "alpha", "new"])) == 1
    assert conn.live.load_orgs(2) == (["zeta", "alpha"], 4)
    assert conn.live.load_orgs(10)[0] == ["zeta", "alpha", "mid", "new"]
    plans = [
        " ".join(row[3] for row in conn.connection.execute(f"EXPLAIN QUERY PLAN {sql}", args))
        for sql, args in (
            ("INSERT OR IGNORE INTO org_series (org_id) VALUES (?)", ("x",)),
            ("DELETE FROM window_minutes WHERE minute_ms < ?", (T,)),
        )
    ]
    assert plans[0] == ""  # an append: no subquery, nothing to plan
    assert plans[1] == "SEARCH window_minutes USING PRIMARY KEY (minute_ms<?)"
    conn.close()


def test_schema_migration_keys_window_minutes_by_minute_first(tmp_path: Path) -> None:
    """A database from before the minute-first key keeps every bucket's value; commits add
    to the migrated buckets, and the window's read and prune seek the primary key."""
    path = tmp_path / "voxmon.db"
    conn = database_at(path, len(MIGRATIONS) - 1)
    old = [
        ("", T, "received", 3.0), ("org-b", T, "received", 2.0),
        ("org-a", T + 60_000, "failed", 1.0), ("org-a", T - 60_000, "received", 7.5),
    ]  # fmt: skip
    conn.executemany("INSERT INTO window_minutes VALUES (?, ?, ?, ?)", old)
    conn.close()
    store = open_store(path)
    conn = store.connection
    assert conn.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
    assert (
        conn.execute(
            "SELECT name FROM sqlite_schema WHERE tbl_name = 'window_minutes' AND type = 'index'"
        ).fetchall()
        == []
    )  # the table is its primary key; the minute index went with the old one
    added = Tally(minutes={("org-b", T, "received"): 4.0, ("org-c", T, "received"): 1.0})
    store.write(lambda c: c.live.save_tally(added))
    assert store.live.load_minutes(T) == {
        ("", T, "received"): 3.0, ("org-b", T, "received"): 6.0,
        ("org-c", T, "received"): 1.0, ("org-a", T + 60_000, "failed"): 1.0,
    }  # fmt: skip
    assert store.write(lambda c: c.live.prune_minutes(T)) == 1
    assert conn.execute("SELECT COUNT(*) FROM window_minutes").fetchone() == (4,)
    plans = [
        " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", (T,)))
        for sql in ("SELECT * FROM window_minutes WHERE minute_ms >= ?",
                    "DELETE FROM window_minutes WHERE minute_ms < ?")
    ]  # fmt: skip
    assert plans == ["SEARCH window_minutes USING PRIMARY KEY (minute_ms>?)",
                     "SEARCH window_minutes USING PRIMARY KEY (minute_ms<?)"]  # fmt: skip
    store.close()


def test_schema_migration_indexes_the_feed_and_artifact_filters(tmp_path: Path) -> None:
    """A database from before the feed gets its indexes; every feed filter and the artifact
    organisation filter search an index instead of scanning a table."""
    path = tmp_path / "voxmon.db"
    conn = database_at(path, 6)
    conn.execute(
        "INSERT INTO events (event_id, event_type, ts_ms, received_ms, org_id)"
        " VALUES ('e1', 'artifact_received', ?, ?, 'org-a')",
        (T, T + 5),
    )
    conn.close()
    store = open_store(path)
    statements: list[str] = []
    store.connection.set_trace_callback(statements.append)
    for filters in (
        EventFilter(T),
        EventFilter(T, org_id="org-a"),
        EventFilter(T, event_type="artifact_received"),
        EventFilter(T, artifact_id="n1"),
    ):
        store.events.recent(filters, FeedPosition(T + 10, 99), 10)
    store.artifacts.list_states("completed", None, 10, org_id="org-a")
    store.connection.set_trace_callback(None)
    plans = [
        " ".join(row[3] for row in store.connection.execute(f"EXPLAIN QUERY PLAN {sql}"))
        for sql in statements
    ]
    assert [plan.split(" (")[0] for plan in plans] == [
        "SEARCH events USING INDEX events_by_received",
        "SEARCH events USING INDEX events_by_org_received",
        "SEARCH events USING INDEX events_by_type_received",
        "SEARCH events USING INDEX events_by_artifact",
        "SEARCH artifacts USING INDEX artifacts_by_org",
    ]
    assert [e["event_id"] for e in store.events.recent(EventFilter(T), None, 10)] == ["e1"]
    store.close()


def test_sqlite_migrations_of_two_processes_starting_together_apply_once(tmp_path: Path) -> None:
    """A second process that read the old version just before the first migrated the file
    (here: its ``BEGIN IMMEDIATE`` is the moment) waits for the first, reads the version
    again and applies nothing twice (it used to fail: ``table ... already exists``)."""
    path = tmp_path / "voxmon.db"
    conn = database_at(path, len(MIGRATIONS) - 1)
    conn.close()
    late = sqlite3.connect(path, isolation_level=None)
    raced: list[str] = []

    def first_migrates(statement: str) -> None:
        if statement.startswith("BEGIN") and not raced:
            raced.append(statement)
            open_store(path).close()  # the other process, migrating the whole way

    late.set_trace_callback(first_migrates)
    assert migrate(late) == len(MIGRATIONS)
    late.set_trace_callback(None)
    assert raced == ["BEGIN IMMEDIATE"]
    assert late.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
    assert late.execute("SELECT COUNT(*) FROM snapshot_writes").fetchone() == (0,)
    late.close()


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (
            "CREATE TABLE a (x);\n  CREATE TABLE b (y);\n",
            ["CREATE TABLE a (x);", "\n  CREATE TABLE b (y);"],
        ),
        ("INSERT INTO a VALUES ('x;y');", ["INSERT INTO a VALUES ('x;y');"]),
        (
            "CREATE TRIGGER t AFTER INSERT ON a BEGIN DELETE FROM b; DELETE FROM c; END;",
            ["CREATE TRIGGER t AFTER INSERT ON a BEGIN DELETE FROM b; DELETE FROM c; END;"],
        ),
    ],
)
def test_sqlite_migration_scripts_split_into_whole_statements(
    script: str, expected: list[str]
) -> None:
    assert statements(script) == expected


def test_sqlite_schema_version_below_zero_is_refused(tmp_path: Path) -> None:
    """No voxmon writes one; migrating would otherwise ask for the write lock forever."""
    path = tmp_path / "voxmon.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = -1")
    conn.close()
    with pytest.raises(RuntimeError, match="schema version -1 is not one voxmon writes"):
        open_store(path)
