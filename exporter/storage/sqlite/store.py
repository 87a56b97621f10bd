"""``SqliteStore``: one SQLite connection's view of every storage concern."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from exporter.storage.sqlite.artifacts import SqliteArtifacts
from exporter.storage.sqlite.connection import read_transaction, transaction
from exporter.storage.sqlite.events import SqliteEvents
from exporter.storage.sqlite.horizons import SqliteHorizons
from exporter.storage.sqlite.job_runs import SqliteJobRuns
from exporter.storage.sqlite.live_state import SqliteLiveState
from exporter.storage.sqlite.orgs import SqliteOrgs
from exporter.storage.sqlite.snapshots import SqliteSnapshots

T = TypeVar("T")


class SqliteStore:
    """Implements ``exporter.storage.base.Store`` on one connection (used on one thread)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.connection = conn
        self.events = SqliteEvents(conn)
        self.live = SqliteLiveState(conn)
        self.snapshots = SqliteSnapshots(conn)
        self.job_runs = SqliteJobRuns(conn)
        self.artifacts = SqliteArtifacts(conn)
        self.orgs = SqliteOrgs(conn)
        self.horizons = SqliteHorizons(conn)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with transaction(self.connection):
            yield

    @contextmanager
    def read_transaction(self) -> Iterator[None]:
        with read_transaction(self.connection):
            yield

    def write(self, fn: Callable[[SqliteStore], T]) -> T:
        """``fn(self)`` inside one write transaction."""
        with self.transaction():
            return fn(self)

    def close(self) -> None:
        self.snapshots.close()
        self.connection.close()
