"""The SQLite backend at run time: the writer's connection, the rollup jobs' read
connection and the read pool for queries, opened and closed together."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from exporter.storage.sqlite.database import Database
from exporter.storage.sqlite.health import SqliteHealthChecks
from exporter.storage.sqlite.pool import ReadPool

READ_THREADS = 3
"""Query threads: a few concurrent reads on 2 cores; more only add contention."""


class SoleLeader:
    """The only daemon on a file runs every job."""

    leading = True

    async def hold(self) -> bool:
        return True


@dataclass(slots=True)
class SqliteBackend:
    """Implements ``exporter.storage.base.Backend`` on one database file."""

    writes: Database
    rollup_reads: Database
    reads: ReadPool
    checks: SqliteHealthChecks
    _stack: AsyncExitStack
    leadership: SoleLeader = field(default_factory=lambda: SoleLeader())
    shared: bool = False
    """One daemon per file (the file lock): it leads, and shares nothing."""

    @classmethod
    async def open(cls, path: str, *, synchronous: str = "FULL") -> SqliteBackend:
        """Open (creating and migrating if needed) the database; a failure at any step
        closes what was already open."""
        async with AsyncExitStack() as stack:
            writes = await Database.open(path, synchronous=synchronous)
            stack.push_async_callback(writes.close)
            rollup_reads = await Database.open(path, synchronous=synchronous)
            stack.push_async_callback(rollup_reads.close)
            reads = ReadPool(path, READ_THREADS)
            stack.push_async_callback(reads.close)
            checks = SqliteHealthChecks(writes.path)
            return cls(writes, rollup_reads, reads, checks, stack.pop_all())
        raise AssertionError("unreachable")

    async def measure_size(self) -> int:
        return self.writes.size_bytes()

    async def close(self) -> None:
        await self._stack.aclose()
