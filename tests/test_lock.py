"""One daemon per database: the ``<db>.lock`` flock and its holder record, on real files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from exporter.errors import StartupError
from exporter.lock import DatabaseLock, Holder, ensure_free, lock_path

HOLDER = Holder(pid=4242, host="node-7", listen="127.0.0.1:9473", since="2026-11-28T10:00:00Z")
IN_USE = (
    "database {db} is in use by another voxmon (pid 4242 on node-7, listening on"
    " 127.0.0.1:9473, since 2026-11-28T10:00:00Z); stop that daemon first, or give this one"
    " its own database with --db"
)


def test_lock_records_the_holder_and_refuses_a_second_taker(tmp_path: Path) -> None:
    db = tmp_path / "voxmon.db"
    held = DatabaseLock.acquire(db, HOLDER)
    assert held.path == tmp_path / "voxmon.db.lock"
    assert json.loads(held.path.read_text()) == {
        "pid": 4242, "host": "node-7", "listen": "127.0.0.1:9473", "since": "2026-11-28T10:00:00Z"
    }  # fmt: skip
    other = Holder(pid=1, host="h", listen="127.0.0.1:1", since="x")
    with pytest.raises(StartupError) as refused:
        DatabaseLock.acquire(db, other)  # a second open file description: flock conflicts
    assert refused.value.message == IN_USE.format(db=db)
    assert json.loads(held.path.read_text())["pid"] == 4242  # the refused taker wrote nothing
    held.release()
    again = DatabaseLock.acquire(db, other)
    assert json.loads(again.path.read_text())["pid"] == 1
    again.release()
    assert again.path.read_text() == ""  # released: the file stays, the record is cleared


def test_lock_ensure_free_reports_the_holder_and_creates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "voxmon.db"
    ensure_free(db)
    assert list(tmp_path.iterdir()) == []
    held = DatabaseLock.acquire(db, HOLDER)
    with pytest.raises(StartupError) as refused:
        ensure_free(db)
    assert refused.value.message == IN_USE.format(db=db)
    held.release()
    ensure_free(db)
    DatabaseLock.acquire(db, HOLDER).release()  # ensure_free's own probe left no lock behind


def test_lock_holder_not_yet_recorded(tmp_path: Path) -> None:
    db = tmp_path / "voxmon.db"
    held = DatabaseLock.acquire(db, HOLDER)
    held.path.write_text("")  # the moment between taking the lock and writing the record
    with pytest.raises(StartupError, match=r"in use by another voxmon \(a process that has not"):
        DatabaseLock.acquire(db, HOLDER)
    held.release()


def test_lock_path_follows_symlinks_to_the_real_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "voxmon.db").touch()
    (tmp_path / "link.db").symlink_to(tmp_path / "data" / "voxmon.db")
    assert lock_path(tmp_path / "link.db") == tmp_path / "data" / "voxmon.db.lock"
    held = DatabaseLock.acquire(tmp_path / "data" / "voxmon.db", HOLDER)
    with pytest.raises(StartupError, match="pid 4242 on node-7"):
        DatabaseLock.acquire(tmp_path / "link.db", HOLDER)
    held.release()


def test_lock_unwritable_directory_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(StartupError) as refused:
        DatabaseLock.acquire(tmp_path / "missing" / "voxmon.db", HOLDER)
    assert refused.value.message == (
        f"cannot create lock file {tmp_path}/missing/voxmon.db.lock: No such file or directory"
    )


def test_lock_a_hard_link_to_a_held_database_is_refused(tmp_path: Path) -> None:
    """Two names of one file: each had its own ``<name>.lock``, so two daemons started, each
    with its own write-ahead log, and the file was corrupt within seconds (integrity_check:
    "2nd reference to page ..."). The database file itself is locked too."""
    db, other = tmp_path / "voxmon.db", tmp_path / "other.db"
    db.touch()
    os.link(db, other)
    held = DatabaseLock.acquire(db, HOLDER)
    with pytest.raises(StartupError, match="under another name"):
        ensure_free(other)  # before any other.db.lock exists
    message = (
        f"database {other} is in use by another voxmon under another name (a hard link to the"
        " same file); stop that daemon first, or give this one its own database with --db"
    )
    with pytest.raises(StartupError) as refused:
        DatabaseLock.acquire(other, HOLDER)
    assert refused.value.message == message
    with pytest.raises(StartupError) as reported:
        ensure_free(other)
    assert reported.value.message == message
    held.release()
    DatabaseLock.acquire(other, HOLDER).release()


def test_lock_creates_the_database_file_so_a_later_link_meets_the_lock(tmp_path: Path) -> None:
    db = tmp_path / "voxmon.db"
    held = DatabaseLock.acquire(db, HOLDER)
    assert db.stat().st_size == 0  # SQLite takes an empty file as a new database
    os.link(db, tmp_path / "other.db")
    with pytest.raises(StartupError, match="under another name"):
        DatabaseLock.acquire(tmp_path / "other.db", HOLDER)
    db.write_bytes(b"data")  # the daemon used it: kept
    held.release()
    assert db.read_bytes() == b"data"
    DatabaseLock.acquire(tmp_path / "new.db", HOLDER).release()
    assert not (tmp_path / "new.db").exists()  # created, never used (start-up was refused)
