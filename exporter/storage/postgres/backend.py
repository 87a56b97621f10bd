"""The PostgreSQL backend at run time: the writer's connection, the rollup jobs' read
connection, the read pool for queries and the job-lock connection, opened and closed
together. Replicas share it: ``shared`` turns on the change journal."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass

from exporter.storage.postgres.database import PgDatabase
from exporter.storage.postgres.health import PgHealthChecks
from exporter.storage.postgres.leader import PgLeadership
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
    leadership: PgLeadership
    _stack: AsyncExitStack
    shared: bool = True

    @classmethod
    async def open(cls, url: str, instance: str = "") -> PgBackend:
        """Connect (creating or migrating the schema) as replica ``instance``; a failure at
        any step closes what was already open."""
        async with AsyncExitStack() as stack:
            writes = await PgDatabase.open(url, instance)
            stack.push_async_callback(writes.close)
            leadership = await PgLeadership.open(url, instance)
            stack.push_async_callback(leadership.close)
            rollup_reads = await PgDatabase.open(url, instance)
            stack.push_async_callback(rollup_reads.close)
            reads = PgReadPool(url, READ_CONNECTIONS, instance)
            stack.push_async_callback(reads.close)
            checks = PgHealthChecks()
            return cls(writes, rollup_reads, reads, checks, leadership, stack.pop_all())
        raise AssertionError("unreachable")

    async def measure_size(self) -> int:
        """The database's size on the server (a catalog lookup on a read connection)."""
        return await self.reads.run(_size)

    async def close(self) -> None:
        await self._stack.aclose()


def _size(store: PgStore) -> int:
    row = store.connection.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0
