"""Storage faults on real file systems under a real daemon: a full tmpfs, a database
directory deleted under the daemon, and start-up on a read-only tmpfs. Acknowledged events
are never lost; readiness says why; recovery needs no restart. Mounting needs root: without
it these tests fail in CI and are skipped elsewhere."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import aiohttp
import pytest

from tests.tools import (
    DEADLINE_S,
    batch,
    free_port,
    http,
    one_line,
    refused_in_process,
    serving,
    voxmon,
    wait_listening,
)

pytestmark = pytest.mark.slow


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"mount {' '.join(args)} failed in CI: {result.stderr.strip()}")
        pytest.skip(f"cannot mount here: {result.stderr.strip()}")


@contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A fresh tmpfs of ``size`` at ``where``, unmounted at the end whatever happens."""
    where.mkdir()
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def fill(path: Path) -> None:
    """Write ``path`` until the file system has no space left."""
    with open(path, "wb", buffering=0) as handle:
        chunk = b"\0" * 65536
        with suppress(OSError):
            while True:
                handle.write(chunk)
        with suppress(OSError):
            while True:
                handle.write(b"\0" * 512)  # the last partial blocks too


def stored_ids(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT event_id FROM events")]


async def poster(base: str, client: int, seen: dict[str, list[str]], stop: asyncio.Event) -> None:
    """Post batches until ``stop``: ids of acknowledged events into ``seen["acked"]``, and
    one entry per answer into ``seen["<status> <Retry-After>"]``."""
    async with aiohttp.ClientSession() as session:
        number = 0
        while not stop.is_set():
            events = batch(client, number)
            number += 1
            async with session.post(f"{base}/v1/events", json=events) as response:
                key = f"{response.status} {response.headers.get('Retry-After', '-')}"
                seen.setdefault(key, []).append(events[0]["event_id"])
                if response.status == 200:
                    assert (await response.json())["accepted"] == len(events)
                    seen.setdefault("acked", []).extend(e["event_id"] for e in events)
            await asyncio.sleep(0.01)


async def until(check: object, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if await asyncio.to_thread(check):  # type: ignore[arg-type]
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def ready(base: str) -> tuple[int, str]:
    status, _, body = http("GET", f"{base}/readyz")
    return status, body.decode()


async def test_filesystem_full_disk_refuses_then_resumes_losing_nothing(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tmpfs(tmp_path / "disk", "24m") as disk:
        db = disk / "voxmon.db"
        log = tmp_path / "voxmon.log"
        seen: dict[str, list[str]] = {}
        with serving(db, port, log=log) as process:
            wait_listening(process, log, port)
            stop = asyncio.Event()
            clients = [asyncio.create_task(poster(base, c, seen, stop)) for c in range(3)]
            await until(lambda: len(seen.get("acked", [])) >= 1200, "acknowledged posts")
            fill(disk / "filler")
            await until(lambda: "503 2" in seen, "a 503 with Retry-After: 2")
            status, body = ready(base)
            assert status == 503, body
            assert "storage cannot commit (disk_full): database or disk is full" in body
            assert http("GET", f"{base}/healthz")[0] == 200
            acked_while_full = len(seen.get("acked", []))
            (disk / "filler").unlink()
            await until(lambda: ready(base)[0] == 200, "/readyz 200 after space returned")
            await until(lambda: len(seen["acked"]) > acked_while_full + 200, "posts resuming")
            stop.set()
            await asyncio.wait_for(asyncio.gather(*clients), timeout=DEADLINE_S)
            process.send_signal(signal.SIGKILL)
        with serving(db, port, log=log) as again:  # the final restart
            wait_listening(again, log, port)
        stored = stored_ids(db)
    acked = seen["acked"]
    assert len(acked) == len(set(acked))
    assert len(stored) == len(set(stored))
    assert set(acked) <= set(stored)
    assert set(seen) <= {"acked", "200 -", "503 2"}, set(seen)
    print(f"acked {len(acked)}, stored {len(stored)}, 503s {len(seen['503 2'])}")


async def test_filesystem_deleted_database_directory_is_never_acknowledged(
    tmp_path: Path,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    (tmp_path / "data").mkdir()
    db, log = tmp_path / "data" / "voxmon.db", tmp_path / "voxmon.log"
    with serving(db, port, log=log) as process:
        wait_listening(process, log, port)
        assert http("POST", f"{base}/v1/events", batch(0, 0))[0] == 200
        shutil.rmtree(tmp_path / "data")
        status, headers, body = http("POST", f"{base}/v1/events", batch(0, 1))
        assert (status, headers["Retry-After"]) == (503, "60"), body
        reason = (
            f"database file {db} was removed while voxmon was running;"
            " restart voxmon (no write is acknowledged until then)"
        )
        assert reason in body.decode()
        status, readiness = ready(base)
        assert status == 503 and reason in readiness, readiness
        assert http("GET", f"{base}/healthz")[0] == 200
        assert process.poll() is None  # it stays up, saying why it is not ready


def test_filesystem_read_only_at_start_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with tmpfs(tmp_path / "disk", "8m") as disk:
        db = disk / "voxmon.db"
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE t (x)")
        conn.close()  # nothing open for writing, or the kernel refuses the remount
        _mount("-o", "remount,ro", str(disk))
        port = str(free_port())
        expected = (
            f"voxmon: database {db} is not writable: cannot create files in {disk} (Read-only"
            " file system); make the file, its directory and the file system writable for voxmon"
        )
        assert one_line(voxmon(tmp_path, "serve", "--db", str(db), "--port", port)) == expected
        refused = refused_in_process(capsys, "check-config", "--db", str(db), "--port", port)
        assert refused == expected
        with pytest.raises(OSError) as refused:  # the mount really is read-only
            (disk / "probe").touch()
        assert refused.value.errno == errno.EROFS


SPILLING_SORT = """
import sqlite3, sys
from exporter.storage.sqlite.connection import connect, transaction
conn = connect(sys.argv[1])
conn.execute("CREATE TABLE t (k TEXT, x REAL)")
with transaction(conn):
    conn.executemany("INSERT INTO t VALUES (?, ?)",
                     ((f"key-{i % 20011:05d}-{i}", i / 7) for i in range(120_000)))
try:
    print(len(conn.execute("SELECT k, COUNT(*) FROM t GROUP BY k").fetchall()))
except sqlite3.OperationalError as exc:
    print(f"{type(exc).__name__}: {exc}")
assert not conn.in_transaction
print(conn.execute("SELECT COUNT(*) FROM t").fetchone()[0])
"""


def test_filesystem_full_temp_directory_fails_a_spilling_sort_with_disk_full(
    tmp_path: Path,
) -> None:
    """A sort that spills into a full temp directory (``SQLITE_TMPDIR``) fails with SQLite's
    disk-full error, as decisions/hourly-aggregation.md says, and leaves the connection
    usable; the same sort with room counts every key."""
    root = Path(__file__).resolve().parent.parent
    with tmpfs(tmp_path / "temp", "1m") as temp:
        for tmpdir, expected in ((temp, "OperationalError: database or disk is full"),
                                 (tmp_path, "120000")):  # fmt: skip
            result = subprocess.run(
                [sys.executable, "-c", SPILLING_SORT, str(tmp_path / f"{tmpdir.name}.db")],
                env={**os.environ, "SQLITE_TMPDIR": str(tmpdir)}, cwd=root,
                capture_output=True, text=True, timeout=DEADLINE_S, check=True,
            )  # fmt: skip
            assert result.stdout.splitlines() == [expected, "120000"], result.stderr
