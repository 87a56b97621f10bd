"""Read connections for queries: psycopg's connection pool behind a few worker threads, so
a slow breakdown or a rollup's reads never make a realtime or history read wait, and the
writer's commits never wait for a read (MVCC)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Concatenate, ParamSpec, TypeVar

from psycopg_pool import ConnectionPool

from exporter.storage.postgres.connection import EXACT_FLOATS, Connection
from exporter.storage.postgres.store import PgStore

T = TypeVar("T")
P = ParamSpec("P")


class PgReadPool:
    """``size`` threads sharing a pool of at most ``size`` connections."""

    def __init__(self, url: str, size: int, instance: str = "") -> None:
        self._instance = instance
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=size,
            kwargs={"autocommit": True, "application_name": "voxmon-read"},
            open=True,
            name="voxmon-read",
            configure=_exact_floats,
        )
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="voxmon-read")

    async def run(
        self, fn: Callable[Concatenate[PgStore, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``fn(store, *args)`` on a free read thread with a pooled connection."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: self.call(fn, *args, **kwargs))

    def call(
        self, fn: Callable[Concatenate[PgStore, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``fn(store, *args)`` on this thread with a pooled connection."""
        with self._pool.connection() as conn:
            return fn(PgStore(conn, self._instance), *args, **kwargs)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._executor.shutdown, True)
        await loop.run_in_executor(None, self._pool.close)


def _exact_floats(conn: Connection) -> None:
    conn.execute(EXACT_FLOATS)
