"""The database thread: one SQLite connection owned by one worker thread, which runs whole
transactions (``run(fn)`` calls ``fn(store)`` there), so the event loop never blocks on disk
and a group commit is one hop, not one per statement (docs/decisions)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from exporter.storage.sqlite.connection import connect
from exporter.storage.sqlite.store import SqliteStore

T = TypeVar("T")
P = ParamSpec("P")


class Database:
    """One connection owned by one worker thread; ``run(fn)`` executes ``fn(store, ...)``
    there. A whole group commit is one hop to the thread rather than one per statement."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        executor: ThreadPoolExecutor,
        path: Path,
        synchronous: str = "FULL",
    ):
        self._store = SqliteStore(conn)
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

    async def run(
        self, fn: Callable[Concatenate[SqliteStore, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(store, *args)`` on the database thread and return its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._store, *args, **kwargs))

    def call(
        self, fn: Callable[Concatenate[SqliteStore, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(store, *args)`` on the database thread and block until it returns. For
        other worker threads only (never the event loop, never this database's thread):
        it lets a rollup job on its own read connection queue its writes behind ingest
        commits, so there is one write path and batches interleave fairly."""
        # The store is looked up on the database thread, when the work runs: a ``reopen()``
        # queued before it has replaced it by then.
        return self._executor.submit(lambda: fn(self._store, *args, **kwargs)).result()

    async def reopen(self) -> None:
        """Replace the connection with a fresh one on the same file (never creating it).
        A connection SQLite opened, or degraded to, read-only stays read-only after the
        cause is fixed; a new one sees the file as it is now. The old connection is kept
        if the new one cannot be opened."""
        await self.run(lambda _conn: self._swap())

    def _swap(self) -> None:
        fresh = connect(self.path, synchronous=self._synchronous, create=False)
        with suppress(sqlite3.Error):
            self._store.close()
        self._store = SqliteStore(fresh)

    async def trace(self, callback: Callable[[str], object] | None) -> None:
        """Report every SQL statement this connection runs to ``callback`` (tests count
        queries with it); None stops tracing."""
        await self.run(lambda store: store.connection.set_trace_callback(callback))

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, lambda: self._store.close())
        self._executor.shutdown(wait=True)

    def size_bytes(self) -> int:
        """Database file plus its WAL, in bytes (0 for files not yet created)."""
        total = 0
        for suffix in ("", "-wal"):
            candidate = Path(f"{self.path}{suffix}")
            if candidate.exists():
                total += candidate.stat().st_size
        return total
