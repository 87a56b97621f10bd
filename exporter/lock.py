"""One daemon per database: an exclusive ``flock`` on the sidecar file ``<db>.lock``, which
holds a small JSON record of the holder. The kernel drops the lock when its process dies,
however it dies, so a killed daemon never blocks a restart."""

from __future__ import annotations

import fcntl
import json
import os
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
    """The held lock; ``release()`` (or process exit) frees it."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd = fd
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
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(holder)).encode() + b"\n", 0)
        return cls(fd, path)

    def release(self) -> None:
        """Clear the record and unlock. The file stays: deleting it would let a process
        that opened the old file and one that creates a new one both hold "the" lock."""
        if self._fd < 0:
            return
        os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing the last descriptor drops the flock
        self._fd = -1


def ensure_free(db_path: str | Path) -> None:
    """Raise ``StartupError`` naming the holder when a daemon holds the database now, as
    ``acquire`` would. Creates nothing (for ``check-config``): no lock file, no holder."""
    path = lock_path(db_path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StartupError(f"cannot read lock file {path}: {exc.strerror}") from None
    try:
        if not _try_lock(fd):  # a lock taken here is dropped by the close below
            raise StartupError(refusal(db_path, _read_holder(fd)))
    finally:
        os.close(fd)


def refusal(db_path: str | Path, holder: Holder | None) -> str:
    """The one line ``serve`` and ``check-config`` print for a database in use."""
    who = holder.describe() if holder else "a process that has not recorded itself yet"
    return (
        f"database {db_path} is in use by another voxmon ({who}); stop that daemon first,"
        " or give this one its own database with --db"
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
