"""SQLite connections: the error that ends a transaction is the error the caller sees; a
large sort adds its floats in the same order every time; the switch to WAL is asked again
while another process opening the file holds it."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from exporter.storage.sqlite import connection
from exporter.storage.sqlite.connection import connect, read_transaction, transaction, use_wal


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


def test_sqlite_spilled_group_by_sums_floats_alike_on_every_run(tmp_path: Path) -> None:
    """A GROUP BY far larger than the page cache (sorted runs spilled to temp files and
    merged, as the hourly rollup's) adds each group's floats in the same order every time,
    so re-running a rollup stores the same bytes. Sorter helper threads broke this: 4 or 5
    different results from 8 runs."""
    conn = connect(tmp_path / "voxmon.db")
    assert conn.execute("PRAGMA threads").fetchone() == (0,)
    rng = random.Random(3)
    conn.execute("CREATE TABLE t (org TEXT, kind TEXT, x REAL)")
    with transaction(conn):
        conn.executemany("INSERT INTO t VALUES (?, ?, ?)", (
            (f"org-{rng.randrange(50):02d}", f"type-{rng.randrange(4)}", rng.random() * 1e3)
            for _ in range(300_000)))  # fmt: skip
    query = "SELECT org, kind, COUNT(*), SUM(x) FROM t GROUP BY org, kind"
    results = {tuple(conn.execute(query).fetchall()) for _ in range(6)}
    assert len(results) == 1
    (rows,) = results
    assert len(rows) == 200 and sum(n for _, _, n, _ in rows) == 300_000
    conn.close()


def locked(times: int, then: BaseException | None = None) -> tuple[list[str], Any]:
    """An ``execute`` that answers "database is locked" ``times`` times, then ``then``."""
    asked: list[str] = []

    def execute(sql: str) -> None:
        asked.append(sql)
        if len(asked) <= times:
            exc = sqlite3.OperationalError("database is locked")
            exc.sqlite_errorcode = sqlite3.SQLITE_BUSY  # type: ignore[attr-defined]
            raise exc
        if then is not None:
            raise then

    return asked, execute


def test_sqlite_wal_switch_asks_again_while_another_process_holds_the_file() -> None:
    """Injected fault: SQLite refuses the switch at once (no busy wait) three times."""
    asked, execute = locked(3)
    use_wal(execute)
    assert asked == ["PRAGMA journal_mode=WAL"] * 4


def test_sqlite_wal_switch_gives_up_after_its_tries_and_on_other_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(connection, "WAL_TRIES", 3)
    asked, execute = locked(5)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        use_wal(execute)
    assert len(asked) == 3
    asked, execute = locked(0, sqlite3.OperationalError("disk I/O error"))
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        use_wal(execute)
    assert len(asked) == 1
