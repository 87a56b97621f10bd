"""SQLite connections: the error that ends a transaction is the error the caller sees;
large sorts run on helper threads and count every row."""

from __future__ import annotations

import os
import random
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from exporter.storage.sqlite.connection import (
    MAX_SORT_THREADS,
    connect,
    read_transaction,
    sort_threads,
    transaction,
)


def test_sqlite_read_transaction_keeps_the_error_sqlite_rolled_back_on(tmp_path: Path) -> None:
    """A sort that spills to a full temp directory fails with SQLITE_FULL and SQLite rolls
    the read transaction back by itself (as the hourly rollup's GROUP BY does when the temp
    directory is full): the caller sees that error, not 'cannot commit - no transaction is
    active' from the COMMIT after it, which hid the cause and was no storage error."""
    conn = connect(tmp_path / "voxmon.db")
    full = pytest.raises(sqlite3.OperationalError, match="database or disk is full")
    with full, read_transaction(conn):
        conn.execute("SELECT 1").fetchone()
        conn.execute("ROLLBACK")  # what SQLite does on SQLITE_FULL
        raise sqlite3.OperationalError("database or disk is full")
    assert not conn.in_transaction
    with read_transaction(conn):  # the connection is usable again
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(ZeroDivisionError), read_transaction(conn):
        conn.execute("SELECT 1").fetchone()
        raise ZeroDivisionError
    assert not conn.in_transaction
    conn.close()


@pytest.mark.parametrize(("cores", "helpers"), [(1, 0), (2, 1), (3, 2), (64, 2)])
def test_sqlite_sorts_use_the_other_cores_up_to_two_helper_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cores: int, helpers: int
) -> None:
    """Every connection lets a large sort start one helper thread per core the process may
    run on beyond its own, at most ``MAX_SORT_THREADS``: none on one core."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cores)), raising=False)
    assert sort_threads() == helpers
    conn = connect(tmp_path / "voxmon.db")
    assert conn.execute("PRAGMA threads").fetchone() == (helpers,)
    conn.close()


def test_sqlite_sort_threads_fall_back_to_the_cpu_count_without_affinity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert sort_threads() == 0
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert sort_threads() == MAX_SORT_THREADS


def test_sqlite_group_by_spilled_and_sorted_on_helper_threads_counts_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GROUP BY many times larger than the page cache (sorted runs spilled to temp files
    and merged on a helper thread, as the hourly rollup's) gives the brute-force counts."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    conn = connect(tmp_path / "voxmon.db")
    rng = random.Random(7)
    rows = [(f"org-{rng.randrange(500):03d}", f"type-{rng.randrange(20)}", rng.random())
            for _ in range(150_000)]  # fmt: skip
    conn.execute("CREATE TABLE t (org TEXT, kind TEXT, x REAL)")
    with transaction(conn):
        conn.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    expected = Counter((org, kind) for org, kind, _ in rows)
    assert conn.execute("PRAGMA threads").fetchone() == (1,)
    found = conn.execute("SELECT org, kind, COUNT(*) FROM t GROUP BY org, kind").fetchall()
    assert {(org, kind): n for org, kind, n in found} == expected
    assert len(found) == len(expected) == 10_000
    conn.close()
