"""What ``serve`` checks before it starts and ``check-config`` reports, through the same
code: the database's directory, lock, integrity and writability, and the listen address.
Every failure is a ``StartupError`` of one line that says what to do."""

from __future__ import annotations

import errno
import logging
import os
import socket
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path

from exporter import lock
from exporter.clock import Clock
from exporter.errors import StartupError
from exporter.health import CORRUPT_ADVICE
from exporter.settings import Settings
from exporter.storage.factory import server_problem
from exporter.storage.sqlite import health as storage

log = logging.getLogger(__name__)

QUICK_CHECK_BUDGET_S = 5.0
"""Longest ``PRAGMA quick_check`` at start; a bigger file is checked no further."""

_ADVICE = {
    "corrupt": CORRUPT_ADVICE,
    "read_only": "make the file, its directory and the file system writable for voxmon",
    "cannot_open": "make the file, its directory and the file system writable for voxmon",
    "busy": "another process holds its write lock; stop it or retry",
    "disk_full": "free disk space",
}


def check_location(db_path: str) -> None:
    """The database's directory exists and takes new files (SQLite creates its journal and
    voxmon its lock file there); the path is not a directory; an existing file is
    readable and writable."""
    path = Path(db_path)
    parent = path.parent
    try:
        if not parent.is_dir():
            missing = "does not exist" if not parent.exists() else "is not a directory"
            raise StartupError(f"cannot open database {db_path}: directory {parent} {missing}")
        if path.is_dir():
            raise StartupError(f"cannot open database {db_path}: it is a directory")
        fd, name = tempfile.mkstemp(prefix=".voxmon-check-", dir=parent)
        os.close(fd)
        os.unlink(name)
        if path.exists() and not os.access(path, os.R_OK | os.W_OK):
            raise StartupError(f"database {db_path} is not writable: permission denied")
    except OSError as exc:
        raise StartupError(
            f"database {db_path} is not writable: cannot create files in {parent}"
            f" ({exc.strerror}); {_ADVICE['read_only']}"
        ) from None


def check_database(db_path: str, clock: Clock, full: bool = True) -> None:
    """An existing database opens, its schema reads, it passes ``PRAGMA quick_check``
    (bounded by ``QUICK_CHECK_BUDGET_S``; ``full=False``: not here, ``serve`` runs the
    whole check after start) and takes a write lock. A missing one is fine: ``serve``
    creates it. Changes nothing."""
    path = Path(db_path)
    if not path.exists():
        return
    try:
        conn = storage.open_existing(path)
        try:
            storage.read_schema(conn)
            if full:
                _inspect(conn, db_path, clock)
            storage.check_writable(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StartupError(describe_failure(db_path, exc)) from None


def _inspect(conn: sqlite3.Connection, db_path: str, clock: Clock) -> None:
    deadline = clock.monotonic() + QUICK_CHECK_BUDGET_S
    problem = storage.quick_check(
        conn, lambda: clock.monotonic() > deadline, backstop_s=QUICK_CHECK_BUDGET_S
    )
    if problem is None:
        log.warning("quick_check of %s did not finish within %.0f s; skipped",
                    db_path, QUICK_CHECK_BUDGET_S)  # fmt: skip
    elif problem:
        raise StartupError(
            f"database {db_path} is corrupt (quick_check: {problem}); {_ADVICE['corrupt']}"
        )


def describe_failure(db_path: str, exc: BaseException) -> str:
    """One line for a database that failed to open or write."""
    kind = storage.classify(exc)
    if kind == "corrupt":
        return f"database {db_path} is corrupt ({exc}); {_ADVICE['corrupt']}"
    verb = "is not writable" if kind == "read_only" else "cannot be used"
    advice = _ADVICE.get(kind or "", "see the SQLite error")
    return f"database {db_path} {verb} ({exc}); {advice}"


def bind(host: str, port: int) -> list[socket.socket]:
    """Bound (not yet listening) sockets for every address ``host`` resolves to, as
    asyncio would bind them; ``StartupError`` when any address cannot be bound."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    bound: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            bound.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as exc:
        for sock in bound:
            sock.close()
        hint = "; another process listens there (stop it, or set --port)"
        in_use = exc.errno == errno.EADDRINUSE
        raise StartupError(
            f"cannot listen on {host}:{port}: {exc.strerror}{hint if in_use else ''}"
        ) from None
    return bound


def problems(settings: Settings, clock: Clock) -> list[str]:
    """Everything ``serve`` would refuse to start on, one line each (``check-config``).
    Creates no database and leaves no lock or socket behind."""
    found: list[str] = []
    db = settings.db_path

    def run(check: Callable[[], object]) -> bool:
        try:
            check()
        except StartupError as exc:
            found.append(exc.message)
            return False
        return True

    if settings.location.kind == "postgres":
        run(lambda: check_server(settings))
    elif run(lambda: check_location(db)) and run(lambda: lock.ensure_free(db)):
        run(lambda: check_database(db, clock))
    run(lambda: _release(bind(settings.host, settings.port)))
    return found


def check_server(settings: Settings) -> None:
    """``StartupError`` when the PostgreSQL server cannot be reached with the URL."""
    problem = server_problem(settings.location)
    if problem is not None:
        raise StartupError(f"database {settings.location.shown}: {problem}")


def _release(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()
