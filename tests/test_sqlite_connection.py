"""SQLite transactions: the error that ends one is the error the caller sees."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from exporter.storage.sqlite.connection import connect, read_transaction


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
