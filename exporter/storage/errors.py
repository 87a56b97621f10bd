"""Storage failure kinds, whichever backend raised them (``voxmon_storage_errors_total``)."""

from __future__ import annotations

from exporter.storage.sqlite import health as sqlite_health

KINDS = sqlite_health.KINDS
"""disk_full, io_error, read_only, cannot_open, busy, corrupt, replaced, other."""


def classify(exc: BaseException) -> str | None:
    """The kind of storage failure ``exc`` is (one of ``KINDS``), or None when it says
    nothing about the storage. PostgreSQL's driver is imported only for its errors."""
    if type(exc).__module__.startswith("psycopg"):
        from exporter.storage.postgres import health as postgres_health

        return postgres_health.classify(exc)
    return sqlite_health.classify(exc)


def is_storage_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a database error or an OS error (start-up reports it as one line)."""
    import sqlite3

    return isinstance(exc, sqlite3.Error | OSError) or type(exc).__module__.startswith("psycopg")
