"""Two reads at once on one snapshot: the hourly job's two aggregations each sort every
event of the hour, and SQLite runs a statement on one core. Two more read-only connections
to the same file run them at the same time, one on a thread of its own (``sqlite3``
releases the GIL while a statement steps), so the hour takes about as long as the longer
of the two (decisions/hourly-aggregation.md).

Both must read the caller's snapshot, which its read transaction fixed before (the guard
and the dirty mark were read in it). Each extra connection starts its own and all three
read a marker: the number of events of the window and the horizons. Inside a window the
rollup's guard allows, events are only added (an insert undone in its own transaction
leaves nothing); retention deletes a window's events only after raising the events
watermark past it, in the same transaction, which changes the horizons. So equal markers
mean the window's events are the same in all three snapshots.

The caller's connection itself runs no sort here, so its snapshot survives whatever
happens to the other two (a sort that fills the temp directory makes SQLite roll back
that connection's transaction). Whenever the markers differ (a commit landed in between),
an extra connection cannot be opened (an in-memory database, a removed file, another file
put at the path since the store was made, no file descriptors left) or either statement
fails on one (its temp files need room for both sorts at once), both run one after the
other on the caller's connection, as they did before. Each statement runs on one
connection without sorter threads, so the rows are the same either way."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TypeVar

from exporter.storage.sqlite.connection import (
    FileIdentity,
    connect_reader,
    identity_of,
    read_transaction,
)

A = TypeVar("A")
B = TypeVar("B")
Read = Callable[[sqlite3.Connection], A]

MARKER = (
    "SELECT (SELECT COUNT(*) FROM events WHERE ts_ms >= ? AND ts_ms < ?),"
    " (SELECT group_concat(name || '=' || ms, ',') FROM (SELECT name, ms FROM horizons"
    " ORDER BY name))"
)
log = logging.getLogger(__name__)


class Pair:
    """The caller's connection and, opened on first use, two read-only ones to its file."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._path = _file_of(conn)
        self._opened = _identity(self._path)
        """The file at the path when the store was made, right after its connection
        opened: the readers must open that file, not another put in its place since."""
        self._readers: list[sqlite3.Connection] = []
        self.last_paired = False
        """Whether the last ``run`` got both results from the extra connections."""

    def run(self, window: tuple[int, int], first: Read[A], second: Read[B]) -> tuple[A, B]:
        """``(first(c), second(c))`` on the caller's snapshot of the events of ``window``
        (``[start, end)`` ms): at once on the two extra connections when they read the
        same, else one after the other here. Call inside a read transaction of the
        caller's connection."""
        self.last_paired = False
        try:
            readers = self._open()
            if readers:
                mine = self._conn.execute(MARKER, window).fetchone()
                with ExitStack() as stack:
                    for reader in readers:
                        stack.enter_context(read_transaction(reader))
                    if all(r.execute(MARKER, window).fetchone() == mine for r in readers):
                        found = _together(readers, first, second)
                        self.last_paired = True
                        return found
        except sqlite3.Error as exc:
            log.warning("hourly aggregations at once failed (%s); one after the other", exc)
        return first(self._conn), second(self._conn)

    def _open(self) -> list[sqlite3.Connection]:
        """The two readers, opened if not yet; none for an in-memory database."""
        if not self._readers:
            path = self._path
            if path is None:
                return []
            self._check_identity(path)
            opened = [connect_reader(path)]
            try:
                opened.append(connect_reader(path))
                self._check_identity(path)  # not replaced while they opened
            except BaseException:
                for reader in opened:
                    reader.close()
                raise
            self._readers = opened
        return self._readers

    def _check_identity(self, path: Path) -> None:
        if self._opened is None or _identity(path) != self._opened:
            raise sqlite3.OperationalError(f"{path} is no longer the file voxmon opened")

    def close(self) -> None:
        for reader in self._readers:
            reader.close()
        self._readers = []


def _together(readers: list[sqlite3.Connection], first: Read[A], second: Read[B]) -> tuple[A, B]:
    """``first`` on a thread with one reader, ``second`` here with the other; the thread is
    always joined before returning (its transaction must not end under its statement), and
    its error, if any, raised here."""
    found: list[A] = []
    failed: list[BaseException] = []

    def work() -> None:
        try:
            found.append(first(readers[0]))
        except BaseException as exc:  # raised on the caller's thread below
            failed.append(exc)

    thread = threading.Thread(target=work, name="voxmon-rollup-pair", daemon=True)
    thread.start()
    try:
        other = second(readers[1])
    finally:
        thread.join()
    if failed:
        raise failed[0]
    return found[0], other


def _identity(path: Path | None) -> FileIdentity | None:
    """``identity_of``, None where there is no file or it cannot be read: no pairing."""
    try:
        return identity_of(path) if path is not None else None
    except OSError:
        return None


def _file_of(conn: sqlite3.Connection) -> Path | None:
    """The main database file of ``conn``; None for an in-memory or temporary one (or a
    connection that cannot say: no pairing then)."""
    try:
        listed = conn.execute("PRAGMA database_list").fetchall()
    except sqlite3.Error:
        return None
    for _, name, path in listed:
        if name == "main":
            return Path(path) if path else None
    return None
