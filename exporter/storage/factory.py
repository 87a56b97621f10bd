"""The ``Backend`` factory: the location chooses SQLite (the default, a file) or
PostgreSQL (a server); the PostgreSQL driver is imported only when it is chosen."""

from __future__ import annotations

from typing import Protocol

from exporter.storage.base import Backend, Store
from exporter.storage.location import Location


async def open_backend(
    location: Location, *, synchronous: str = "FULL", instance: str = ""
) -> Backend:
    """Open (creating and migrating the schema if needed) the backend at ``location``;
    ``instance`` names this replica on shared storage."""
    if location.kind == "postgres":
        from exporter.storage.postgres.backend import PgBackend

        return await PgBackend.open(location.target, instance)
    from exporter.storage.sqlite.backend import SqliteBackend

    return await SqliteBackend.open(location.target, synchronous=synchronous)


class ClosableStore(Store, Protocol):
    """A store on its own connection, for one command."""

    def close(self) -> None: ...


def open_store(location: Location, *, synchronous: str = "FULL") -> ClosableStore:
    """A store on an existing database (never creating one): the commands' connection."""
    if location.kind == "postgres":
        from exporter.storage.postgres.connection import connect as pg_connect
        from exporter.storage.postgres.store import PgStore

        return PgStore(pg_connect(location.target, create=False))
    from exporter.storage.sqlite.connection import connect
    from exporter.storage.sqlite.store import SqliteStore

    return SqliteStore(connect(location.target, synchronous=synchronous, create=False))


def server_problem(location: Location) -> str | None:
    """Why the PostgreSQL server at ``location`` cannot be used now, None when it can."""
    from exporter.storage.postgres.health import reachable

    return reachable(location.target)
