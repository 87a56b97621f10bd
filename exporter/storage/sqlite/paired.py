"""Two reads at once on one snapshot: the hourly job's two aggregations each sort every
event of the hour, and SQLite runs a statement on one core. A second connection to the same
file runs one of them on a thread of its own (``sqlite3`` releases the GIL while a statement
steps) while the caller's connection runs the other, so the hour takes about as long as the
longer of the two (decisions/hourly-aggregation.md).

Both must read the events as one snapshot. The caller's read transaction fixed its snapshot
before; the second connection starts its own and both read a marker: the largest event
``seq`` and the horizons. Events are only ever added at a larger ``seq`` (an insert undone
in its own transaction leaves nothing) and only deleted by retention, below a watermark it
raises first, which the rollup's guard reads in the caller's snapshot. So equal markers
mean no commit between the two snapshots changed what either aggregation reads. When they
differ (a commit landed in between) or no second connection can be had (an in-memory
database), both statements run one after the other on the caller's connection, as before.

Each statement runs on one connection without sorter threads, so the result is the same
bytes either way."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from exporter.storage.sqlite.connection import connect, read_transaction

A = TypeVar("A")
B = TypeVar("B")

MARKER = (
    "SELECT (SELECT MAX(seq) FROM events),"
    " (SELECT group_concat(name || '=' || ms, ',') FROM (SELECT name, ms FROM horizons"
    " ORDER BY name))"
)


class Pair:
    """The caller's connection and, opened on first use, a second one to the same file."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._partner: sqlite3.Connection | None = None
        self.last_paired = False
        """Whether the last ``run`` used both connections (tests and benchmarks read it)."""

    def run(
        self, other: Callable[[sqlite3.Connection], A], own: Callable[[sqlite3.Connection], B]
    ) -> tuple[A, B]:
        """``(other(c), own(c))`` on one snapshot: ``other`` on the second connection while
        ``own`` runs here, or both here. Call inside a read transaction of the caller's
        connection (its snapshot is the one both read)."""
        mine = self._conn.execute(MARKER).fetchone()
        partner = self._second()
        self.last_paired = False
        if partner is None:
            return other(self._conn), own(self._conn)
        with read_transaction(partner):
            if partner.execute(MARKER).fetchone() != mine:
                return other(self._conn), own(self._conn)
            self.last_paired = True
            return _together(partner, other, self._conn, own)

    def _second(self) -> sqlite3.Connection | None:
        if self._partner is None:
            path = _file_of(self._conn)
            if path is None:
                return None
            self._partner = connect(path, create=False)
        return self._partner

    def close(self) -> None:
        if self._partner is not None:
            self._partner.close()
            self._partner = None


def _together(
    partner: sqlite3.Connection,
    other: Callable[[sqlite3.Connection], A],
    conn: sqlite3.Connection,
    own: Callable[[sqlite3.Connection], B],
) -> tuple[A, B]:
    """``other`` on a thread with ``partner``, ``own`` here; the thread is always joined
    before returning (the partner's transaction must not end under its statement), and its
    error, if any, raised here."""
    found: list[A] = []
    failed: list[BaseException] = []

    def work() -> None:
        try:
            found.append(other(partner))
        except BaseException as exc:  # raised on the caller's thread below
            failed.append(exc)

    thread = threading.Thread(target=work, name="voxmon-rollup-pair", daemon=True)
    thread.start()
    try:
        mine = own(conn)
    finally:
        thread.join()
    if failed:
        raise failed[0]
    return found[0], mine


def _file_of(conn: sqlite3.Connection) -> Path | None:
    """The main database file of ``conn``; None for an in-memory or temporary one."""
    for _, name, path in conn.execute("PRAGMA database_list"):
        if name == "main":
            return Path(path) if path else None
    return None
