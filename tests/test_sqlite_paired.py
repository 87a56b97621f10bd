"""The hourly aggregations on two SQLite connections at once (``storage.sqlite.paired``):
the same rows as one after the other, the caller's snapshot even when a commit lands
between the two snapshots' starts, and errors on either side raised only after both
statements have finished."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from exporter.model import Event, Metadata
from exporter.storage.sqlite.connection import connect, read_transaction
from exporter.storage.sqlite.paired import Pair
from exporter.storage.sqlite.store import SqliteStore
from rollup.digest import GAMMA, MIN_MS
from tests.tools import open_store

START = 1_795_860_000_000  # 2026-11-28T10:00:00Z
END = START + 3_600_000


def events_of_the_hour(count: int, prefix: str = "e", scale: float = 1.0) -> list[Event]:
    rng = random.Random(7)
    return [
        Event(f"{prefix}{i}", kind, START + rng.randrange(3_600_000), artifact_id=f"a{i}",
              org_id=f"org-{rng.randrange(5)}", stage=stage, duration_ms=rng.random() * 9e3 * scale,
              metadata=Metadata(ai_cost_usd=rng.random() / 3, confidence=rng.random()))
        for i in range(count)
        for kind, stage in [rng.choice([("transcription_completed", "transcription"),
                                        ("artifact_completed", None), ("rate_limit_hit", None)])]
    ]  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    opened = open_store(tmp_path / "voxmon.db")
    opened.write(lambda s: s.events.insert(events_of_the_hour(20_000), 0))
    return opened


def one_after_the_other(store: SqliteStore) -> tuple[object, object]:
    with store.read_transaction():
        snapshots = store.snapshots
        return snapshots.group_rows(START, END), snapshots.latency_groups(START, END, GAMMA, MIN_MS)


def test_paired_aggregations_equal_one_after_the_other_on_two_connections(
    store: SqliteStore,
) -> None:
    statements: list[str] = []
    store.connection.set_trace_callback(statements.append)
    with store.read_transaction():
        paired = store.snapshots.hourly_aggregates(START, END, GAMMA, MIN_MS)
    store.connection.set_trace_callback(None)
    assert store.snapshots._pair.last_paired
    # the caller's connection ran neither statement, only the marker
    assert [sql.split()[:2] for sql in statements] == [
        ["BEGIN"], ["SELECT", "(SELECT"], ["COMMIT"],
    ]  # fmt: skip
    assert paired == one_after_the_other(store)
    groups, latencies = paired
    assert sum(g.count for g in groups) == 20_000
    assert sum(lat.count for lat in latencies) > 0
    store.close()


def test_paired_aggregations_keep_the_callers_snapshot_when_a_commit_lands_between(
    store: SqliteStore, tmp_path: Path
) -> None:
    """The rollup's snapshot starts (guard, dirty mark), then ingest commits 50 more events
    of the hour, then the aggregations run: the second connection would see them, so both
    statements run on the caller's snapshot, and neither counts them."""
    before = one_after_the_other(store)
    writer = open_store(tmp_path / "voxmon.db")
    with store.read_transaction():
        store.horizons.load()  # the snapshot starts here, as in rollup_hour
        writer.write(lambda s: s.events.insert(events_of_the_hour(50, prefix="late"), 0))
        during = store.snapshots.hourly_aggregates(START, END, GAMMA, MIN_MS)
        paired = store.snapshots._pair.last_paired
    assert during == before
    assert not paired
    with store.read_transaction():
        after = store.snapshots.hourly_aggregates(START, END, GAMMA, MIN_MS)
    assert store.snapshots._pair.last_paired
    assert sum(g.count for g in after[0]) == 20_050
    writer.close()
    store.close()


def test_paired_aggregations_see_a_late_event_that_reuses_a_deleted_seq(
    store: SqliteStore, tmp_path: Path
) -> None:
    """Rowids are reused: a later retention batch (its watermark already raised, so the
    horizons do not change) deletes the newest row, a late event of an hour already pruned,
    and ingest then stores an event of the rolled-up hour under that same ``seq``. The
    marker counts the hour's events, so the caller's snapshot is still the one read."""
    pruned_hour = START - 2 * 3_600_000
    late = Event("late-old", "rate_limit_hit", pruned_hour + 5, org_id="org-1")
    store.write(lambda s: s.events.insert([late], 0))
    store.write(lambda s: s.horizons.raise_watermark("events_from", START - 3_600_000))
    before = one_after_the_other(store)
    writer = open_store(tmp_path / "voxmon.db")
    (top,) = writer.connection.execute("SELECT MAX(seq) FROM events").fetchone()
    with store.read_transaction():
        store.horizons.load()
        assert writer.write(lambda s: s.events.delete_before(START - 3_600_000, 10)) == 1
        writer.write(lambda s: s.events.insert(events_of_the_hour(1, prefix="new"), 0))
        assert writer.connection.execute("SELECT MAX(seq) FROM events").fetchone() == (top,)
        during = store.snapshots.hourly_aggregates(START, END, GAMMA, MIN_MS)
        paired = store.snapshots._pair.last_paired
    assert during == before
    assert not paired
    writer.close()
    store.close()


def test_paired_aggregations_run_on_one_connection_after_a_retention_commit_between(
    store: SqliteStore, tmp_path: Path
) -> None:
    """Retention raises its watermark in each batch's transaction before deleting events;
    a raise between the two snapshots' starts also keeps both statements on the caller's."""
    writer = open_store(tmp_path / "voxmon.db")
    with store.read_transaction():
        store.horizons.load()
        writer.write(lambda s: s.horizons.raise_watermark("events_from", START - 3_600_000))
        store.snapshots.hourly_aggregates(START, END, GAMMA, MIN_MS)
        assert not store.snapshots._pair.last_paired
    writer.close()
    store.close()


def test_paired_aggregations_of_an_in_memory_database_run_on_its_one_connection() -> None:
    store = SqliteStore(connect(":memory:"))
    store.write(lambda s: s.events.insert(events_of_the_hour(300), 0))
    with store.read_transaction():
        groups, _ = store.snapshots.hourly_aggregates(START, END, GAMMA, MIN_MS)
    assert not store.snapshots._pair.last_paired
    assert sum(g.count for g in groups) == 300
    store.close()


def test_paired_error_of_an_in_memory_database_is_raised_once_without_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No extra connections to fall back from: a statement's error is the error, raised
    from its one run."""
    store = SqliteStore(connect(":memory:"))
    calls: list[int] = []

    def failing(conn: sqlite3.Connection) -> None:
        calls.append(1)
        raise sqlite3.OperationalError("database or disk is full")

    with pytest.raises(sqlite3.OperationalError), read_transaction(store.connection):
        store.snapshots._pair.run((START, END), failing, failing)
    assert (len(calls), caplog.text) == (1, "")
    store.close()


def test_paired_error_on_either_side_is_raised_after_both_finished(store: SqliteStore) -> None:
    """An extra connection's transaction must not end under its running statement: an
    error on one side waits for the other side, and the thread's error is raised on the
    caller's thread; afterwards no connection is left in a transaction."""
    pair = Pair(store.connection)
    finished: list[str] = []

    def slow(conn: sqlite3.Connection) -> None:
        time.sleep(0.3)
        finished.append(threading.current_thread().name)

    def failing(conn: sqlite3.Connection) -> None:
        raise ZeroDivisionError("injected")

    with pytest.raises(ZeroDivisionError, match="injected"), read_transaction(store.connection):
        pair.run((START, END), slow, failing)
    assert finished == ["voxmon-rollup-pair"]
    with pytest.raises(ZeroDivisionError), read_transaction(store.connection):
        pair.run((START, END), failing, lambda conn: conn.execute("SELECT 1").fetchone())
    assert not store.connection.in_transaction
    assert len(pair._readers) == 2 and not any(r.in_transaction for r in pair._readers)
    pair.close()
    assert pair._readers == []
    store.close()


def test_paired_database_error_on_an_extra_connection_runs_both_on_the_callers(
    store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A sort that fills the temp directory fails (SQLite rolls that connection's
    transaction back); the caller's snapshot ran no sort and is intact, so both statements
    run there one after the other, as before pairing, with the same rows."""
    expected = one_after_the_other(store)
    snapshots = store.snapshots

    def full_on_a_reader(conn: sqlite3.Connection) -> object:
        if conn is not store.connection:
            raise sqlite3.OperationalError("database or disk is full")
        return snapshots.group_rows(START, END)

    with store.read_transaction():
        found = snapshots._pair.run(
            (START, END), full_on_a_reader,
            lambda c: SqliteStore(c).snapshots.latency_groups(START, END, GAMMA, MIN_MS),
        )  # fmt: skip
        assert not snapshots._pair.last_paired
    assert found == expected
    assert "database or disk is full" in caplog.text
    store.close()


def test_paired_never_reads_another_database_put_at_the_path(
    store: SqliteStore, tmp_path: Path
) -> None:
    """Another voxmon database, the same hour's events with ten times the durations (so
    the same marker), moved in place of the file after the store opened it: the readers
    would open it by its path, so both statements run on the caller's connection, which
    still has the file it opened."""
    expected = one_after_the_other(store)
    other = open_store(tmp_path / "other.db")
    tenfold = events_of_the_hour(20_000, scale=10.0)
    other.write(lambda s: s.events.insert(tenfold, 0))
    other.close()
    (tmp_path / "voxmon.db").rename(tmp_path / "aside.db")
    (tmp_path / "other.db").rename(tmp_path / "voxmon.db")
    with store.read_transaction():
        found = store.snapshots.hourly_aggregates(START, END, GAMMA, MIN_MS)
        assert not store.snapshots._pair.last_paired
    assert found == expected
    store.close()


@pytest.mark.parametrize("change", ["removed", "replaced"])
def test_paired_without_the_file_at_its_path_runs_on_the_callers(
    store: SqliteStore, tmp_path: Path, change: str
) -> None:
    """The extra connections open the file now at the path, read-only: a removed file
    cannot be opened and an empty file put in its place holds no events; either way both
    statements run on the caller's connection and nothing is written to the path."""
    expected = one_after_the_other(store)
    path = tmp_path / "voxmon.db"
    path.rename(tmp_path / "aside.db")
    if change == "replaced":
        path.write_bytes(b"")
    with store.read_transaction():
        found = store.snapshots.hourly_aggregates(START, END, GAMMA, MIN_MS)
        assert not store.snapshots._pair.last_paired
    assert found == expected
    assert (path.exists(), path.stat().st_size if path.exists() else None) == (
        (True, 0) if change == "replaced" else (False, None)
    )
    store.close()
