"""Opening a SQLite connection (WAL mode, pragmas, math functions, migrations), its
transactions, and the identity of the file it opened."""

from __future__ import annotations

import math
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

from exporter.storage.sqlite.schema import migrate

T = TypeVar("T")
P = ParamSpec("P")


def connect(
    path: str | Path, *, synchronous: str = "FULL", create: bool = True
) -> sqlite3.Connection:
    """Open (creating if needed, unless ``create=False``) and migrate the database;
    autocommit mode, so every write goes through ``transaction()``. ``synchronous=FULL``
    makes each commit survive power loss, not just a process crash; group commit keeps its
    cost per batch, not per event."""
    target = str(path) if create else f"{Path(path).resolve().as_uri()}?mode=rw"
    conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False, uri=not create)
    use_wal(conn.execute)
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    _read_settings(conn)
    migrate(conn)
    return conn


BUSY_TIMEOUT_S = 10.0
"""How long a connection waits for another process's lock (a migration, a rollup's write)
before it gives up with ``database is locked``."""
WAL_RETRY_S = 0.02
WAL_TRIES = round(BUSY_TIMEOUT_S / WAL_RETRY_S)
"""How many times ``use_wal`` asks, ``WAL_RETRY_S`` apart: as long as ``busy_timeout`` waits."""


def use_wal(execute: Callable[[str], object]) -> None:
    """Switch the file to WAL (a no-op once it is). Two processes opening a new file at the
    same moment can each hold it for reading while asking for the switch; SQLite then
    answers "database is locked" to one at once, without waiting, so ask again."""
    for _ in range(WAL_TRIES - 1):
        try:
            execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_BUSY:
                raise
        threading.Event().wait(WAL_RETRY_S)
    execute("PRAGMA journal_mode=WAL")


def connect_reader(path: str | Path) -> sqlite3.Connection:
    """A read-only connection to an existing database file, for extra reads beside a
    connection that ``connect`` opened (it neither creates, migrates nor changes the file;
    the journal mode is the file's, WAL)."""
    uri = f"{Path(path).resolve().as_uri()}?mode=ro"
    conn = sqlite3.connect(uri, isolation_level=None, check_same_thread=False, uri=True)
    try:
        _read_settings(conn)
    except BaseException:
        conn.close()
        raise
    return conn


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """Device and inode of a file: equal identities are the same file."""

    device: int
    inode: int


def identity_of(path: Path) -> FileIdentity | None:
    """The identity of the file now at ``path``, None when there is none."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return FileIdentity(stat.st_dev, stat.st_ino)


def _read_settings(conn: sqlite3.Connection) -> None:
    """What every connection's reads need: waiting for locks, sorts that spill to temp
    files, the math functions the hourly bucketing uses."""
    conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    # A sort larger than the page cache (the hourly GROUP BYs over a million events) spills
    # sorted runs to a temp file and merges them, instead of growing one linked list in memory
    # (temp_store=MEMORY): 40 % less CPU for the hourly rollup and memory bounded by the cache.
    conn.execute("PRAGMA temp_store=FILE")
    # No sorter helper threads (PRAGMA threads stays 0): with them, rows of one group reach
    # SUM() in an order that depends on thread timing, and a re-run's float sums differ in
    # their last digits (decisions/hourly-aggregation.md).
    _ensure_math(conn)


def _ensure_math(conn: sqlite3.Connection) -> None:
    """Register ``ln``/``ceil``/``pow`` (the hourly digest bucketing needs them) where
    SQLite was built without its math functions."""
    try:
        conn.execute("SELECT ln(2.0), ceil(0.5), pow(2.0, 3)").fetchone()
    except sqlite3.OperationalError:
        conn.create_function("ln", 1, math.log, deterministic=True)
        conn.create_function("ceil", 1, math.ceil, deterministic=True)
        conn.create_function("pow", 2, math.pow, deterministic=True)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolls back on any exception, a failed COMMIT
    included. SQLite may already have rolled back by itself (a full disk, an I/O error), and
    a failing ROLLBACK must not hide the error that caused it."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


@contextmanager
def read_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A deferred transaction: the reads inside see one consistent snapshot (WAL readers do
    not block the writer). On an error it ends without hiding it: SQLite may already have
    rolled back by itself (a sort spilling to a full temp directory fails with SQLITE_FULL),
    and the COMMIT after that would raise 'no transaction is active' instead."""
    conn.execute("BEGIN")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def in_transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """``fn(conn)`` inside ``transaction()``."""
    with transaction(conn):
        return fn(conn)
