"""Start-up checks on real files and sockets: each refusal is one line naming the file or
address and what to do; a sound database passes and nothing is created by checking."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from exporter import preflight
from exporter.errors import StartupError
from exporter.lock import DatabaseLock, Holder
from exporter.storage.sqlite.health import SqliteHealthChecks
from tests.conftest import T0, make_settings
from tests.tools import FakeClock, free_port, overwrite, sound_database

CORRUPT = "restore it from a backup, or move it aside to start with an empty one"


def refusal(check: Callable[[], object]) -> str:
    with pytest.raises(StartupError) as refused:
        check()
    message = refused.value.message
    assert "\n" not in message
    return message


def test_preflight_location_refusals(tmp_path: Path) -> None:
    (tmp_path / "file").touch()
    assert refusal(lambda: preflight.check_location(f"{tmp_path}/nope/voxmon.db")) == (
        f"cannot open database {tmp_path}/nope/voxmon.db: directory {tmp_path}/nope does not exist"
    )
    assert refusal(lambda: preflight.check_location(f"{tmp_path}/file/voxmon.db")) == (
        f"cannot open database {tmp_path}/file/voxmon.db: directory {tmp_path}/file is not a"
        " directory"
    )
    assert refusal(lambda: preflight.check_location(str(tmp_path))) == (
        f"cannot open database {tmp_path}: it is a directory"
    )
    preflight.check_location(f"{tmp_path}/voxmon.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # the probe file is gone


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda p, n: os.truncate(p, 100), "(database disk image is malformed)"),
        (lambda p, n: os.truncate(p, n * 4096 // 2), "(database disk image is malformed)"),
        (lambda p, n: overwrite(p, 1, b"garbage!"), "(file is not a database)"),
        (
            lambda p, n: overwrite(p, n - 10, b"\xff" * 64),  # a page of the filler table
            "(quick_check: Page {page}: btreeInitPage() returns error code 11)",
        ),
    ],
    ids=["truncated-header", "truncated-half", "garbage", "corrupt-page"],
)
def test_preflight_corrupt_database_is_refused_naming_the_file(
    tmp_path: Path, damage: Callable[[Path, int], None], problem: str
) -> None:
    db = tmp_path / "voxmon.db"
    pages = sound_database(db)
    assert pages > 70  # the schema plus 2,000 filler rows of 100 bytes
    damage(db, pages)
    clock = FakeClock(T0)
    assert refusal(lambda: preflight.check_database(str(db), clock)) == (
        f"database {db} is corrupt {problem.format(page=pages - 10)}; {CORRUPT}"
    )


@pytest.mark.parametrize(
    ("damage", "refused"),
    [
        (lambda p, n: os.truncate(p, 100), True),
        (lambda p, n: os.truncate(p, n * 4096 // 2), True),
        (lambda p, n: overwrite(p, 1, b"garbage!"), True),
        (lambda p, n: overwrite(p, n - 10, b"\xff" * 64), False),
    ],
    ids=["truncated-header", "truncated-half", "garbage", "corrupt-page"],
)
def test_preflight_without_the_full_check_refuses_only_an_unreadable_header_and_schema(
    tmp_path: Path, damage: Callable[[Path, int], None], refused: bool
) -> None:
    """What ``serve`` checks before it starts (the whole-file check runs after start,
    tests/test_daemon.py): a file that is no database, shorter than its header says, or
    whose schema cannot be read; a damaged page deep in a table is the later check's."""
    db = tmp_path / "voxmon.db"
    pages = sound_database(db)
    damage(db, pages)
    clock = FakeClock(T0)
    if refused:
        assert "is corrupt" in refusal(lambda: preflight.check_database(str(db), clock, False))
    else:
        preflight.check_database(str(db), clock, full=False)


def test_preflight_integrity_check_stops_when_asked(tmp_path: Path) -> None:
    """The whole-file check ``serve`` runs after start: '' on a sound file, the damage on a
    damaged one, None once stopped (shutdown does not wait for a long check)."""
    db = tmp_path / "voxmon.db"
    pages = sound_database(db, rows=20_000)
    checks = SqliteHealthChecks(db)
    assert checks.integrity() == ""
    checks.stop_integrity()
    assert checks.integrity() is None
    overwrite(db, pages - 10, b"\xff" * 64)
    assert SqliteHealthChecks(db).integrity() == (
        f"Page {pages - 10}: btreeInitPage() returns error code 11"
    )


def test_preflight_sound_database_passes_and_missing_one_is_not_created(tmp_path: Path) -> None:
    db = tmp_path / "voxmon.db"
    preflight.check_database(str(db), FakeClock(T0))
    assert list(tmp_path.iterdir()) == []
    sound_database(db)
    before = db.read_bytes()
    preflight.check_database(str(db), FakeClock(T0))
    assert db.read_bytes() == before  # the write check rolls back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["voxmon.db"]


def test_preflight_waits_for_a_lock_held_past_sqlites_default_wait(tmp_path: Path) -> None:
    """Another process migrating the file holds its write lock for longer than sqlite3's
    default 5 s: the start-up check waits for it (as voxmon's own connections wait) instead
    of refusing the file as locked."""
    db = tmp_path / "voxmon.db"
    sound_database(db)
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(5.5, holder.execute, ("ROLLBACK",))
    release.start()
    started = time.monotonic()
    try:
        preflight.check_database(str(db), FakeClock(T0), full=False)
        waited = time.monotonic() - started
    finally:
        release.join()
        holder.close()
    assert 5.4 < waited < 9.0


class TickingClock(FakeClock):
    """Every monotonic reading is ten seconds after the previous one: the quick_check
    budget runs out at its first progress callback."""

    def monotonic(self) -> float:
        self.advance(timedelta(seconds=10))
        return super().monotonic()


def test_preflight_quick_check_is_bounded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "voxmon.db"
    sound_database(db, rows=20_000)
    with caplog.at_level(logging.WARNING):
        preflight.check_database(str(db), TickingClock(T0))
    assert [r.getMessage() for r in caplog.records] == [
        f"quick_check of {db} did not finish within 5 s; skipped"
    ]


def test_preflight_bind_refuses_a_taken_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert refusal(lambda: preflight.bind("127.0.0.1", port)) == (
            f"cannot listen on 127.0.0.1:{port}: Address already in use; another process"
            " listens there (stop it, or set --port)"
        )
    sockets = preflight.bind("127.0.0.1", port)  # free again
    assert [s.getsockname() for s in sockets] == [("127.0.0.1", port)]
    for sock in sockets:
        sock.close()


def test_preflight_bind_unknown_host() -> None:
    message = refusal(lambda: preflight.bind("no-such-host.invalid", 9473))
    assert message.startswith("cannot listen on no-such-host.invalid:9473: ")


def test_preflight_problems_lists_every_refusal_and_leaves_nothing(tmp_path: Path) -> None:
    db = tmp_path / "voxmon.db"
    sound_database(db)
    held = DatabaseLock.acquire(db, Holder(7, "h", "127.0.0.1:1", "2026-11-28T10:00:00Z"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = make_settings(tmp_path, port=port)
        assert preflight.problems(settings, FakeClock(T0)) == [
            f"database {db} is in use by another voxmon (pid 7 on h, listening on 127.0.0.1:1,"
            " since 2026-11-28T10:00:00Z); stop that daemon first, or give this one its own"
            " database with --db",
            f"cannot listen on 127.0.0.1:{port}: Address already in use; another process"
            " listens there (stop it, or set --port)",
        ]
    held.release()
    assert preflight.problems(make_settings(tmp_path, port=free_port()), FakeClock(T0)) == []
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert preflight.problems(make_settings(fresh, port=free_port()), FakeClock(T0)) == []
    assert list(fresh.iterdir()) == []
    shutil.rmtree(fresh)


async def test_preflight_damage_found_while_a_probe_commits_stays_final() -> None:
    """The integrity check finds damage while a storage probe's write is under way: the
    probe's commit, landing after, does not mark storage healthy again."""
    import asyncio

    from prometheus_client import CollectorRegistry

    from exporter.health import StorageHealth
    from exporter.selfmetrics import SelfMetrics

    gate = asyncio.Event()

    class Writes:
        async def run(self, fn: object, *args: object) -> None:
            await gate.wait()

    class Damaged:
        beat = verify = None

        def integrity(self) -> str:
            return "Page 7: btreeInitPage() returns error code 11"

    metrics = SelfMetrics.register(CollectorRegistry())
    health = StorageHealth(Writes(), Damaged(), FakeClock(T0), metrics)  # type: ignore[arg-type]
    probing = asyncio.create_task(health.probe())
    await asyncio.sleep(0)  # the probe waits for its write
    await health.check_integrity("voxmon.db")
    gate.set()
    await probing
    assert (health.healthy, health.kind) == (False, "corrupt")


@pytest.mark.parametrize(
    ("found", "healthy"),
    [
        ("", True),  # sound
        (None, True),  # stopped first, or nothing to check (PostgreSQL)
        ("Page 7: btreeInitPage() returns error code 11", False),
        (OSError(5, "Input/output error"), True),  # unreadable but not damage: logged only
    ],
)
async def test_preflight_integrity_checked_is_set_however_the_check_ends(
    found: object, healthy: bool
) -> None:
    """``integrity_checked`` (what the query benchmark waits for before timing) is set
    once the check after start has ended, whatever it found or raised."""
    from prometheus_client import CollectorRegistry

    from exporter.health import StorageHealth
    from exporter.selfmetrics import SelfMetrics

    class Checks:
        def integrity(self) -> object:
            if isinstance(found, Exception):
                raise found
            return found

    metrics = SelfMetrics.register(CollectorRegistry())
    health = StorageHealth(None, Checks(), FakeClock(T0), metrics)  # type: ignore[arg-type]
    assert not health.integrity_checked.is_set()
    await health.check_integrity("voxmon.db")
    assert health.integrity_checked.is_set()
    assert health.healthy is healthy


async def test_preflight_integrity_checked_is_set_when_the_check_is_cancelled() -> None:
    """A stop while the check still reads the file cancels it: the event is set all the
    same, so nothing waiting on it hangs."""
    import asyncio
    import threading

    from prometheus_client import CollectorRegistry

    from exporter.health import StorageHealth
    from exporter.selfmetrics import SelfMetrics

    reading, release = threading.Event(), threading.Event()

    class Checks:
        def integrity(self) -> str:
            reading.set()
            release.wait(10)
            return ""

    metrics = SelfMetrics.register(CollectorRegistry())
    health = StorageHealth(None, Checks(), FakeClock(T0), metrics)  # type: ignore[arg-type]
    task = asyncio.create_task(health.check_integrity("voxmon.db"))
    try:
        assert await asyncio.to_thread(reading.wait, 10)
        assert not health.integrity_checked.is_set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()
        assert health.integrity_checked.is_set()
    finally:
        release.set()
