"""The writer: one PostgreSQL connection owned by one worker thread, which runs whole
transactions (``run(fn)`` calls ``fn(store)`` there), exactly the contract of the SQLite
database thread, so the group-commit writer and the jobs do not know which backend runs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Concatenate, ParamSpec, TypeVar

import psycopg

from exporter.storage.postgres.connection import connect
from exporter.storage.postgres.store import PgStore

T = TypeVar("T")
P = ParamSpec("P")


class PgDatabase:
    """One connection owned by one worker thread; ``run(fn)`` executes ``fn(store, ...)``."""

    def __init__(
        self, store: PgStore, executor: ThreadPoolExecutor, url: str, instance: str
    ) -> None:
        self._store = store
        self._executor = executor
        self.url, self.instance = url, instance

    @classmethod
    async def open(cls, url: str, instance: str = "") -> PgDatabase:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voxmon-pg")
        loop = asyncio.get_running_loop()
        try:
            conn = await loop.run_in_executor(executor, lambda: connect(url))
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(PgStore(conn, instance), executor, url, instance)

    async def run(
        self, fn: Callable[Concatenate[PgStore, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(store, *args)`` on the database thread and return its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._store, *args, **kwargs))

    def call(
        self, fn: Callable[Concatenate[PgStore, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(store, *args)`` on the database thread and block until it returns (from
        other worker threads only: a rollup job queues its writes behind ingest commits)."""
        return self._executor.submit(lambda: fn(self._store, *args, **kwargs)).result()

    async def reopen(self) -> None:
        """Replace the connection with a fresh one (after the server went away); the old
        one is kept if the new one cannot be opened."""
        await self.run(lambda _store: self._swap())

    def _swap(self) -> None:
        fresh = PgStore(connect(self.url, create=False), self.instance)
        with suppress(psycopg.Error):
            self._store.close()
        self._store = fresh

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, lambda: self._store.close())
        self._executor.shutdown(wait=True)
