"""One daemon per database: an exclusive ``flock`` on the sidecar file ``<db>.lock``, which
holds a small JSON record of the holder. The kernel drops the lock when its process dies,
however it dies, so a killed daemon never blocks a restart."""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import suppress
from dataclasses import asdict, dataclass
from pathlib import Path

from exporter.errors import StartupError


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a database: process, host, listen address and since when (RFC 3339)."""

    pid: int
    host: str
    listen: str
    since: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, listening on {self.listen}, since {self.since}"


def lock_path(db_path: str | Path) -> Path:
    """``<db>.lock`` next to the real file (symlinks resolved, so every path to one
    database meets the same lock)."""
    resolved = Path(db_path).resolve()
    return resolved.with_name(resolved.name + ".lock")


class DatabaseLock:
    """The held lock; ``release()`` (or process exit) frees it. Besides ``<db>.lock`` the
    database file itself is flocked: another name for the same file (a hard link) has its
    own ``.lock`` but meets this one. (``flock`` and SQLite's own ``fcntl`` locks do not
    interact on a local file system.)"""

    def __init__(self, fd: int, path: Path, db_fd: int = -1, created: Path | None = None) -> None:
        self._fd = fd
        self._db_fd = db_fd
        self._created = created
        self.path = path

    @classmethod
    def acquire(cls, db_path: str | Path, holder: Holder) -> DatabaseLock:
        """Take the lock without waiting and record ``holder`` in it. Raises
        ``StartupError`` naming the current holder when another process has it."""
        path = lock_path(db_path)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StartupError(f"cannot create lock file {path}: {exc.strerror}") from None
        if not _try_lock(fd):
            other = _read_holder(fd)
            os.close(fd)
            raise StartupError(refusal(db_path, other))
        created = None if os.path.exists(db_path) else Path(db_path)
        try:  # created empty if missing, so a link made later meets this lock too
            db_fd = os.open(db_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            os.close(fd)
            raise StartupError(f"cannot open database {db_path}: {exc.strerror}") from None
        if not _try_lock(db_fd):
            os.close(db_fd)
            os.close(fd)
            raise StartupError(linked_refusal(db_path))
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(holder)).encode() + b"\n", 0)
        return cls(fd, path, db_fd, created)

    def release(self) -> None:
        """Clear the record and unlock. The file stays: deleting it would let a process
        that opened the old file and one that creates a new one both hold "the" lock."""
        if self._fd < 0:
            return
        os.ftruncate(self._fd, 0)
        self._remove_unused()
        os.close(self._db_fd)  # after the daemon closed its connections
        os.close(self._fd)  # closing the last descriptor drops the flock
        self._fd = self._db_fd = -1

    def _remove_unused(self) -> None:
        """A database file this lock created and nobody wrote (start-up was refused, e.g.
        for a taken port) is removed again: a refused start leaves nothing behind."""
        if self._created is None or os.fstat(self._db_fd).st_size:
            return
        with suppress(OSError):
            if os.stat(self._created).st_ino == os.fstat(self._db_fd).st_ino:
                os.unlink(self._created)


def ensure_free(db_path: str | Path) -> None:
    """Raise ``StartupError`` naming the holder when a daemon holds the database now, as
    ``acquire`` would. Creates nothing (for ``check-config``): no lock file, no holder."""
    path = lock_path(db_path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        fd = -1
    except OSError as exc:
        raise StartupError(f"cannot read lock file {path}: {exc.strerror}") from None
    if fd >= 0:
        try:
            if not _try_lock(fd):  # a lock taken here is dropped by the close below
                raise StartupError(refusal(db_path, _read_holder(fd)))
        finally:
            os.close(fd)
    _ensure_file_free(db_path)


def _ensure_file_free(db_path: str | Path) -> None:
    try:
        fd = os.open(db_path, os.O_RDONLY)
    except OSError:
        return  # missing or unreadable: the start-up checks report it
    try:
        if not _try_lock(fd):
            raise StartupError(linked_refusal(db_path))
    finally:
        os.close(fd)


def refusal(db_path: str | Path, holder: Holder | None) -> str:
    """The one line ``serve`` and ``check-config`` print for a database in use."""
    who = holder.describe() if holder else "a process that has not recorded itself yet"
    return (
        f"database {db_path} is in use by another voxmon ({who}); stop that daemon first,"
        " or give this one its own database with --db"
    )


def linked_refusal(db_path: str | Path) -> str:
    """The database file is locked while its ``.lock`` is free: another name for it."""
    return (
        f"database {db_path} is in use by another voxmon under another name (a hard link to"
        " the same file); stop that daemon first, or give this one its own database with --db"
    )


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_holder(fd: int) -> Holder | None:
    """The holder's record; None while it is still being written (or is unreadable)."""
    try:
        raw = json.loads(os.pread(fd, 4096, 0) or b"null")
        return Holder(int(raw["pid"]), str(raw["host"]), str(raw["listen"]), str(raw["since"]))
    except (ValueError, TypeError, KeyError, OSError):
        return None
