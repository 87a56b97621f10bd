"""One daemon per database: the ``<db>.lock`` flock and its holder record, on real files."""

from __future__ import annotations

import json
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
