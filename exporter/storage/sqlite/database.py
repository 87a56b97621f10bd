"""The SQLite connection: WAL mode, pragmas, migrations, and a single worker thread that
runs whole transactions so the event loop never blocks on disk."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
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
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA temp_store=MEMORY")
    migrate(conn)
    return conn


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
    not block the writer)."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


def in_transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """``fn(conn)`` inside ``transaction()``."""
    with transaction(conn):
        return fn(conn)


class Database:
    """One connection owned by one worker thread; ``run(fn)`` executes ``fn(conn, ...)``
    there. A whole group commit is one hop to the thread rather than one per statement."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        executor: ThreadPoolExecutor,
        path: Path,
        synchronous: str = "FULL",
    ):
        self._conn = conn
        self._executor = executor
        self.path = path
        self._synchronous = synchronous

    @classmethod
    async def open(cls, path: str | Path, *, synchronous: str = "FULL") -> Database:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voxmon-db")
        loop = asyncio.get_running_loop()
        try:
            conn = await loop.run_in_executor(
                executor, lambda: connect(path, synchronous=synchronous)
            )
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(conn, executor, Path(path), synchronous)

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(conn, *args)`` on the database thread and return its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._apply, fn, args)

    def call(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(conn, *args)`` on the database thread and block until it returns. For
        other worker threads only (never the event loop, never this database's thread):
        it lets a rollup job on its own read connection queue its writes behind ingest
        commits, so there is one write path and batches interleave fairly."""
        return self._executor.submit(self._apply, fn, args).result()

    def _apply(self, fn: Callable[..., T], args: tuple[object, ...]) -> T:
        # The connection is looked up on the database thread, when the work runs: a
        # ``reopen()`` queued before it has replaced it by then.
        return fn(self._conn, *args)

    async def reopen(self) -> None:
        """Replace the connection with a fresh one on the same file (never creating it).
        A connection SQLite opened, or degraded to, read-only stays read-only after the
        cause is fixed; a new one sees the file as it is now. The old connection is kept
        if the new one cannot be opened."""
        await self.run(lambda _conn: self._swap())

    def _swap(self) -> None:
        fresh = connect(self.path, synchronous=self._synchronous, create=False)
        with suppress(sqlite3.Error):
            self._conn.close()
        self._conn = fresh

    async def trace(self, callback: Callable[[str], object] | None) -> None:
        """Report every SQL statement this connection runs to ``callback`` (tests count
        queries with it); None stops tracing."""
        await self.run(lambda conn: conn.set_trace_callback(callback))

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, lambda: self._conn.close())
        self._executor.shutdown(wait=True)

    def size_bytes(self) -> int:
        """Database file plus its WAL, in bytes (0 for files not yet created)."""
        total = 0
        for suffix in ("", "-wal"):
            candidate = Path(f"{self.path}{suffix}")
            if candidate.exists():
                total += candidate.stat().st_size
        return total
