"""``PgStore``: one PostgreSQL connection's view of every storage concern."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from exporter.storage.postgres.artifacts import PgArtifacts
from exporter.storage.postgres.connection import Connection, read_transaction, transaction
from exporter.storage.postgres.events import PgEvents
from exporter.storage.postgres.horizons import PgHorizons
from exporter.storage.postgres.job_runs import PgJobRuns
from exporter.storage.postgres.live_state import PgLiveState
from exporter.storage.postgres.orgs import PgOrgs
from exporter.storage.postgres.snapshots import PgSnapshots

T = TypeVar("T")


class PgStore:
    """Implements ``exporter.storage.base.Store`` on one connection (used on one thread)."""

    def __init__(self, conn: Connection, instance: str = "") -> None:
        self.connection = conn
        self.events = PgEvents(conn)
        self.live = PgLiveState(conn, instance)
        self.snapshots = PgSnapshots(conn)
        self.job_runs = PgJobRuns(conn)
        self.artifacts = PgArtifacts(conn)
        self.orgs = PgOrgs(conn)
        self.horizons = PgHorizons(conn)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        try:
            with transaction(self.connection):
                yield
        except BaseException:
            self.events.partitions.forget()  # the rollback undid the partition DDL too
            raise

    @contextmanager
    def read_transaction(self) -> Iterator[None]:
        with read_transaction(self.connection):
            yield

    def write(self, fn: Callable[[PgStore], T]) -> T:
        """``fn(self)`` inside one write transaction."""
        with self.transaction():
            return fn(self)

    def close(self) -> None:
        self.connection.close()
