"""Whether the PostgreSQL database can take a write: failure classification (the same
kinds as SQLite's, ``voxmon_storage_errors_total{kind}``) and the heartbeat write the
storage probe makes. There is no file to be replaced under a server."""

from __future__ import annotations

import psycopg
from psycopg import errors

from exporter.storage.base import Store
from exporter.storage.postgres.connection import transaction
from exporter.storage.postgres.store import PgStore

_BY_CLASS: tuple[tuple[type[BaseException], str], ...] = (
    (errors.DiskFull, "disk_full"),
    (errors.OutOfMemory, "disk_full"),
    (errors.IoError, "io_error"),
    (errors.ReadOnlySqlTransaction, "read_only"),
    (errors.InsufficientPrivilege, "read_only"),
    (errors.LockNotAvailable, "busy"),
    (errors.DeadlockDetected, "busy"),
    (errors.SerializationFailure, "busy"),
    (errors.QueryCanceled, "busy"),
    (errors.DataCorrupted, "corrupt"),
    (errors.IndexCorrupted, "corrupt"),
    (errors.AdminShutdown, "cannot_open"),
    (errors.CannotConnectNow, "cannot_open"),
    (psycopg.OperationalError, "cannot_open"),
)


def classify(exc: BaseException) -> str | None:
    """The kind of storage failure ``exc`` is, or None when it says nothing about the
    storage (a bug, bad input)."""
    return next((kind for cls, kind in _BY_CLASS if isinstance(exc, cls)), None)


def _pg(store: Store) -> PgStore:
    assert isinstance(store, PgStore)
    return store


class PgHealthChecks:
    """Implements ``exporter.storage.base.HealthChecks`` for PostgreSQL."""

    def classify(self, exc: BaseException) -> str | None:
        return classify(exc)

    def prepare(self, store: Store) -> None:
        """The heartbeat table is part of the schema: nothing to create."""
        _pg(store)

    def beat(self, store: Store, now_ms: int) -> None:
        """One real write transaction: upsert the heartbeat row and commit."""
        conn = _pg(store).connection
        with transaction(conn):
            conn.execute(
                "INSERT INTO heartbeat (id, beat_ms) VALUES (1, %s)"
                " ON CONFLICT (id) DO UPDATE SET beat_ms = excluded.beat_ms",
                (now_ms,),
            )

    def verify(self, store: Store) -> None:
        """A commit on the server is where every reader finds it."""

    def before_reopen(self) -> None:
        """A reconnect reaches the same database by its URL."""

    def integrity(self) -> str | None:
        """Nothing to check from here (None): the server keeps its own pages sound."""
        return None

    def stop_integrity(self) -> None:
        """Nothing runs."""


def reachable(url: str) -> str | None:
    """Why a connection to ``url`` cannot be made (one line), None when it can."""
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()
        return f"cannot connect to PostgreSQL: {first[0] if first else type(exc).__name__}"
    return None
