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


def events_of_the_hour(count: int, prefix: str = "e") -> list[Event]:
    rng = random.Random(7)
    return [
        Event(f"{prefix}{i}", kind, START + rng.randrange(3_600_000), artifact_id=f"a{i}",
              org_id=f"org-{rng.randrange(5)}", stage=stage, duration_ms=rng.random() * 9e3,
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
    # the caller's connection ran the latency statement and not the counts and sums
    assert sum("json_group_array" in sql for sql in statements) == 1
    assert not any("COUNT(confidence)" in sql for sql in statements)
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


def test_paired_error_on_either_side_is_raised_after_both_finished(store: SqliteStore) -> None:
    """The second connection's transaction must not end under its running statement: an
    error of the caller's side waits for the other side, and the other side's error is
    raised on the caller's thread; afterwards neither connection is in a transaction."""
    pair = Pair(store.connection)
    finished: list[str] = []

    def slow(conn: sqlite3.Connection) -> None:
        time.sleep(0.3)
        finished.append(threading.current_thread().name)

    def failing(conn: sqlite3.Connection) -> None:
        raise ZeroDivisionError("injected")

    with pytest.raises(ZeroDivisionError, match="injected"), read_transaction(store.connection):
        pair.run(slow, failing)
    assert finished == ["voxmon-rollup-pair"]
    with pytest.raises(ZeroDivisionError), read_transaction(store.connection):
        pair.run(failing, lambda conn: conn.execute("SELECT 1").fetchone())
    assert pair.last_paired
    assert not store.connection.in_transaction
    assert pair._partner is not None and not pair._partner.in_transaction
    pair.close()
    assert pair._partner is None
    store.close()
