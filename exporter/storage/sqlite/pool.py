"""Read connections for queries: a few worker threads, each with its own SQLite connection
(datasette's pattern), so a slow breakdown or a rollup's reads never make a realtime or
history read wait. WAL readers see the last committed state and never block the writer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from exporter.storage.sqlite.connection import connect
from exporter.storage.sqlite.store import SqliteStore

T = TypeVar("T")
P = ParamSpec("P")


class ReadPool:
    """``size`` threads; a thread opens its connection the first time it runs a read."""

    def __init__(self, path: str | Path, size: int) -> None:
        self._path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="voxmon-read")
        self._local = threading.local()
        self._stores: list[SqliteStore] = []
        self._lock = threading.Lock()
        self._trace: Callable[[str], object] | None = None

    async def run(
        self, fn: Callable[Concatenate[SqliteStore, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``fn(store, *args)`` on a free read thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, lambda: fn(self._store(), *args, **kwargs)
        )

    def _store(self) -> SqliteStore:
        store: SqliteStore | None = getattr(self._local, "store", None)
        if store is None:
            store = SqliteStore(connect(self._path, create=False))
            self._local.store = store
            with self._lock:
                self._stores.append(store)
                store.connection.set_trace_callback(self._trace)
        return store

    async def trace(self, callback: Callable[[str], object] | None) -> None:
        """Report every statement any read connection runs to ``callback`` (tests count
        queries with it); None stops tracing."""
        with self._lock:
            self._trace = callback
            for store in self._stores:
                store.connection.set_trace_callback(callback)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._executor.shutdown, True)
        with self._lock:
            for store in self._stores:
                store.close()
            self._stores.clear()
