"""Opening a PostgreSQL connection (autocommit, migrated) and its transactions. Write
transactions take one transaction-scoped advisory lock, so writers are serialized as
SQLite's ``BEGIN IMMEDIATE`` serializes them (a ``voxmon rollup`` beside the daemon never
interleaves with its commits); reads run in REPEATABLE READ snapshots and never wait."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.rows import TupleRow

from exporter.storage.postgres.schema import migrate

Connection = psycopg.Connection[TupleRow]
WRITE_LOCK = 0x766F786D7772  # one writer at a time per database (phase 1: one replica)
IDLE_IN_TRANSACTION_S = 60
"""The server ends a session left idle inside a transaction this long. A write transaction
holds the write lock every replica's commits wait for: a replica paused, frozen or cut off
mid-commit would otherwise stop ingest on all of them until it came back (or, for a vanished
host, until the server's TCP keepalive gave up, hours later)."""
EXACT_FLOATS = "SET extra_float_digits = 1"
"""Floats as text in their shortest exact form, whatever the role or database sets: psycopg
reads float8 columns as text, and the hourly sums read each float through its text
(decisions/hourly-aggregation.md). With 0 (what older clients set) a float would cross
with 15 significant digits and lose its last bits."""


def connect(url: str, *, create: bool = True) -> Connection:
    """Open the database at ``url``; with ``create`` (the daemon) create or migrate the
    schema, without it (commands on an existing database) refuse an empty database."""
    conn = psycopg.connect(url, autocommit=True, application_name="voxmon")
    try:
        conn.execute(f"SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION_S}s'")
        conn.execute(EXACT_FLOATS)
        if create:
            migrate(conn)
        else:
            row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
            if not (row and row[0]):
                raise psycopg.OperationalError("no voxmon schema in this database")
            migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def transaction(conn: Connection) -> Iterator[Connection]:
    """BEGIN, take the write lock, COMMIT on exit; ROLLBACK on any exception."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        yield conn


@contextmanager
def read_transaction(conn: Connection) -> Iterator[Connection]:
    """One consistent snapshot for the reads inside (REPEATABLE READ, read only). On a
    connection the server ended meanwhile, the read's own error is the one raised, not the
    closed connection's on ending the transaction."""
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        yield conn
    finally:
        if not conn.closed:
            conn.execute("COMMIT")
