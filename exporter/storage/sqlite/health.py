"""Whether the database can take a write: failure classification, the heartbeat write the
probe makes, the identity of the open file, and the start-up integrity and write checks."""

from __future__ import annotations

import errno
import sqlite3
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from exporter.storage.base import Store
from exporter.storage.sqlite.connection import (
    BUSY_TIMEOUT_S,
    FileIdentity,
    identity_of,
    transaction,
)
from exporter.storage.sqlite.store import SqliteStore

KINDS = (
    "disk_full",
    "io_error",
    "read_only",
    "cannot_open",
    "busy",
    "corrupt",
    "replaced",
    "other",
)
"""Storage failure kinds (``voxmon_storage_errors_total{kind}``); ``classify`` names all but
"other", an unexpected failure of the probe's own write."""

_BY_CODE = {
    sqlite3.SQLITE_FULL: "disk_full",
    sqlite3.SQLITE_IOERR: "io_error",
    sqlite3.SQLITE_READONLY: "read_only",
    sqlite3.SQLITE_PERM: "read_only",
    sqlite3.SQLITE_CANTOPEN: "cannot_open",
    sqlite3.SQLITE_BUSY: "busy",
    sqlite3.SQLITE_LOCKED: "busy",
    sqlite3.SQLITE_CORRUPT: "corrupt",
    sqlite3.SQLITE_NOTADB: "corrupt",
}
_BY_MESSAGE = (
    ("database or disk is full", "disk_full"),
    ("disk i/o error", "io_error"),
    ("readonly database", "read_only"),
    ("unable to open database file", "cannot_open"),
    ("is locked", "busy"),
    ("malformed", "corrupt"),
    ("file is not a database", "corrupt"),
)
_BY_ERRNO = {
    errno.ENOSPC: "disk_full",
    errno.EDQUOT: "disk_full",
    errno.EIO: "io_error",
    errno.EROFS: "read_only",
    errno.EACCES: "read_only",
    errno.EPERM: "read_only",
    errno.ENOENT: "cannot_open",
}


class FileReplaced(Exception):
    """The file at the database path is no longer the file voxmon opened (deleted, moved
    or replaced): anything committed now would land in a file nobody will read again."""


def classify(exc: BaseException) -> str | None:
    """The kind of storage failure ``exc`` is (one of ``KINDS``), or None when it says
    nothing about the storage (a bug, bad input)."""
    if isinstance(exc, FileReplaced):
        return "replaced"
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            return _BY_CODE.get(code & 0xFF)  # extended codes keep the primary in the low byte
        text = str(exc).lower()
        return next((kind for needle, kind in _BY_MESSAGE if needle in text), None)
    if isinstance(exc, OSError) and exc.errno is not None:
        return _BY_ERRNO.get(exc.errno)
    return None


@dataclass(frozen=True, slots=True)
class OpenedFiles:
    """The database file and its write-ahead log as opened. The log holds every commit
    since the last checkpoint: removed, those commits live only in an unlinked file."""

    database: FileIdentity | None
    wal: FileIdentity | None


def opened_files(path: Path) -> OpenedFiles:
    """The files now at ``path`` and ``<path>-wal`` (take it while a connection is open)."""
    return OpenedFiles(identity_of(path), identity_of(Path(f"{path}-wal")))


def verify_identity(path: Path, opened: OpenedFiles) -> None:
    """Raise ``FileReplaced`` unless ``path`` and its log still name the files opened."""
    for name, was, now in (
        (f"database file {path}", opened.database, identity_of(path)),
        (f"write-ahead log {path}-wal", opened.wal, identity_of(Path(f"{path}-wal"))),
    ):
        if was is not None and now != was:
            what = "removed" if now is None else "replaced by another file"
            raise FileReplaced(f"{name} was {what} while voxmon was running")


def rescue(conn: sqlite3.Connection) -> None:
    """Copy every committed page from the (perhaps unlinked) log into the database file, so
    what was acknowledged survives a crash; best effort, the caller refuses writes anyway."""
    with suppress(sqlite3.Error):
        conn.execute("PRAGMA wal_checkpoint(FULL)").fetchall()


def create_heartbeat(conn: sqlite3.Connection) -> None:
    """The one-row table the storage probe writes (outside the migrations: it holds no
    data, only proves that a write transaction commits)."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS heartbeat"
        " (id INTEGER PRIMARY KEY CHECK (id = 1), beat_ms INTEGER NOT NULL)"
    )


def beat(conn: sqlite3.Connection, now_ms: int) -> None:
    """One real write transaction: upsert the heartbeat row and commit."""
    with transaction(conn):
        conn.execute(
            "INSERT INTO heartbeat (id, beat_ms) VALUES (1, ?)"
            " ON CONFLICT (id) DO UPDATE SET beat_ms = excluded.beat_ms",
            (now_ms,),
        )


def open_existing(path: Path) -> sqlite3.Connection:
    """Open an existing database without creating one (``mode=rw``); SQLite still opens it
    read-only when the file cannot be written, which ``check_writable`` reveals. It waits
    for another process's lock as long as voxmon's own connections do (not sqlite3's 5 s):
    the start-up check must not refuse a file that a ``voxmon rollup`` is migrating."""
    uri = f"{path.resolve().as_uri()}?mode=rw"
    return sqlite3.connect(
        uri, uri=True, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S
    )


def quick_check(
    conn: sqlite3.Connection, expired: Callable[[], bool], backstop_s: float | None
) -> str | None:
    """``PRAGMA quick_check``: '' when the file is sound, the first problem found when it
    is not, None when it was stopped first (a huge file must not stall start-up): by the
    progress handler once ``expired()``, or after ``backstop_s`` seconds (None: never) by
    a timer, since SQLite calls no progress handler during the b-tree walk itself. A file
    that is not a database at all raises ``sqlite3.DatabaseError``."""
    conn.set_progress_handler(lambda: 1 if expired() else 0, 1000)
    backstop = threading.Timer(backstop_s or 0.0, conn.interrupt)
    if backstop_s is not None:
        backstop.start()
    try:
        rows = conn.execute("PRAGMA quick_check(1)").fetchall()
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc):
            return None
        raise
    finally:
        backstop.cancel()
        conn.set_progress_handler(None, 0)
    first = str(rows[0][0]) if rows else "ok"
    if first == "ok":
        return ""
    lines = [line for line in first.splitlines() if not line.startswith("***")]  # the schema
    return "; ".join(lines) or first


def read_schema(conn: sqlite3.Connection) -> None:
    """Read the header and the schema (cheap): raises ``sqlite3.DatabaseError`` for a file
    that is not a database or whose first pages are damaged."""
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()


def check_writable(conn: sqlite3.Connection) -> None:
    """Take the write lock and dirty the header, then roll back: raises the error a real
    write would (read-only file or file system, unopenable journal) without changing
    anything."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        conn.execute(f"PRAGMA user_version = {int(version)}")
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")


class SqliteHealthChecks:
    """Implements ``exporter.storage.base.HealthChecks`` for one database file: the
    identity of the file and its log is taken when the checks are made (at open)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._opened = opened_files(path)
        self._checking: sqlite3.Connection | None = None
        self._stopped = False

    def classify(self, exc: BaseException) -> str | None:
        return classify(exc)

    def prepare(self, store: Store) -> None:
        create_heartbeat(_connection(store))

    def beat(self, store: Store, now_ms: int) -> None:
        beat(_connection(store), now_ms)

    def verify(self, store: Store) -> None:
        """Raise ``FileReplaced`` when the file or its log is no longer the one opened,
        after moving what is committed into the database file."""
        try:
            verify_identity(self.path, self._opened)
        except FileReplaced:
            rescue(_connection(store))
            raise

    def before_reopen(self) -> None:
        """Never reopen onto another file at the same path."""
        verify_identity(self.path, self._opened)

    def integrity(self) -> str | None:
        """``PRAGMA quick_check`` of the whole file on a connection of its own (on a thread
        of its own): '' when sound, the first problem, None when stopped first."""
        conn = open_existing(self.path)
        self._checking = conn
        try:
            return quick_check(conn, lambda: self._stopped, backstop_s=None)
        finally:
            self._checking = None
            conn.close()

    def stop_integrity(self) -> None:
        """Stop a running ``integrity`` (at shutdown); it returns None."""
        self._stopped = True
        if (conn := self._checking) is not None:
            conn.interrupt()


def _connection(store: Store) -> sqlite3.Connection:
    assert isinstance(store, SqliteStore)
    return store.connection
