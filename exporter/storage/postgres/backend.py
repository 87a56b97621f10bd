"""The PostgreSQL backend at run time: the writer's connection, the rollup jobs' read
connection and the read pool for queries, opened and closed together."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass

from exporter.storage.postgres.database import PgDatabase
from exporter.storage.postgres.health import PgHealthChecks
from exporter.storage.postgres.pool import PgReadPool
from exporter.storage.postgres.store import PgStore

READ_CONNECTIONS = 3
"""Query connections, as the SQLite backend's read threads."""


@dataclass(slots=True)
class PgBackend:
    """Implements ``exporter.storage.base.Backend`` on one PostgreSQL database."""

    writes: PgDatabase
    rollup_reads: PgDatabase
    reads: PgReadPool
    checks: PgHealthChecks
    _stack: AsyncExitStack

    @classmethod
    async def open(cls, url: str) -> PgBackend:
        """Connect (creating or migrating the schema); a failure at any step closes what
        was already open."""
        async with AsyncExitStack() as stack:
            writes = await PgDatabase.open(url)
            stack.push_async_callback(writes.close)
            rollup_reads = await PgDatabase.open(url)
            stack.push_async_callback(rollup_reads.close)
            reads = PgReadPool(url, READ_CONNECTIONS)
            stack.push_async_callback(reads.close)
            return cls(writes, rollup_reads, reads, PgHealthChecks(), stack.pop_all())
        raise AssertionError("unreachable")

    def size_bytes(self) -> int:
        """The database's size on the server (a catalog lookup on a read connection)."""
        return self.reads.call(_size)

    async def close(self) -> None:
        await self._stack.aclose()


def _size(store: PgStore) -> int:
    row = store.connection.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0
