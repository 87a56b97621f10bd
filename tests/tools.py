"""Test helpers shared by test modules: the fake clock, external tools (from Debian's
packages), a real ``voxmon serve`` subprocess on a free loopback port and what to send it,
and what the client tests read back."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from voxmon_client import ClientStats

from exporter.cli import main
from exporter.storage.sqlite.connection import connect, transaction
from exporter.storage.sqlite.schema import MIGRATIONS
from exporter.storage.sqlite.store import SqliteStore


class FakeClock:
    """A clock that moves only when told to; wall and monotonic time advance together."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = start.astimezone(UTC)
        self._mono = 1000.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, delta: timedelta | float) -> None:
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._now += timedelta(seconds=seconds)
        self._mono += seconds

    def set(self, when: datetime) -> None:
        self.advance(when.astimezone(UTC) - self._now)


def require(tool: str) -> str:
    """Path of ``tool``. Missing: the test fails when ``CI`` is set (CI installs it), and is
    skipped on a developer machine without it."""
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is required in CI (install the prometheus package)")
        pytest.skip(f"{tool} not installed")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def daemon(db: Path, port: int, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """``voxmon serve`` on ``db`` and ``port`` as a subprocess; killed on exit if alive."""
    process = subprocess.Popen(
        [sys.executable, "-m", "exporter", "serve", "--db", str(db), "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=db.parent,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


async def wait_ready(session: aiohttp.ClientSession, base: str) -> None:
    for _ in range(300):
        try:
            async with session.get(f"{base}/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("daemon did not become ready")


def stored(db: Path, where: str = "1", *args: object) -> list[tuple[Any, ...]]:
    """Rows of the ``events`` table of ``db`` (in arrival order) matching ``where``."""
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT * FROM events WHERE {where} ORDER BY seq", args).fetchall()


def stored_ids(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT event_id FROM events")]


def wait_ready_port(port: int) -> None:
    """Block until the daemon on ``port`` answers ``/readyz`` 200 (polled, 30 s at most)."""
    pause = threading.Event()
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        pause.wait(0.05)
    raise AssertionError("daemon did not become ready")


def settled(stats: ClientStats) -> int:
    """Events in a final bucket or pending: always every emitted event."""
    s = stats
    return s.accepted + s.duplicates + s.rejected + s.dropped + s.abandoned + s.failed + s.pending


def open_store(path: Path) -> SqliteStore:
    """A store on the SQLite file at ``path`` (created and migrated if needed), for tests
    that drive jobs and storage directly; ``store.connection`` is the raw connection."""
    return SqliteStore(connect(path))


def database_at(path: Path, version: int) -> sqlite3.Connection:
    """A new database file at schema ``version``, as a release of that version left it
    (its first ``version`` migrations applied, nothing after); an open connection."""
    conn = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:version], start=1):
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    return conn


DEADLINE_S = 30.0
"""Upper bound for a process to answer: a hang fails the test instead of stalling it."""


@contextmanager
def serving(
    db: Path, port: int, *extra: str, log: Path | None = None
) -> Iterator[subprocess.Popen[str]]:
    """A daemon logging to ``log`` (default ``<db>.log``, started afresh); SIGKILLed if it
    still runs at the end."""
    with open(log or f"{db}.log", "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "exporter", "serve", "--db", str(db), "--port", str(port),
             *extra],
            stdout=subprocess.DEVNULL, stderr=stderr, text=True, cwd=db.parent,
        )  # fmt: skip
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=DEADLINE_S)


def voxmon(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``voxmon *args`` in ``cwd``, with no VOXMON_* variable but those in ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VOXMON_")}
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True, text=True, cwd=cwd, timeout=DEADLINE_S, check=False,
        env={**clean, **env},
    )  # fmt: skip


def wait_listening(process: subprocess.Popen[str], log: Path, port: int) -> list[str]:
    """Poll the log until its "listening" line; returns the lines logged up to then."""
    return wait_logged(process, log, f"listening on http://127.0.0.1:{port}")


def wait_logged(process: subprocess.Popen[str], log: Path, wanted: str) -> list[str]:
    """Poll the log until a line holds ``wanted``; returns the lines logged up to then."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        lines = log.read_text().splitlines()
        if any(wanted in line for line in lines):
            return lines
        assert process.poll() is None, log.read_text()
        time.sleep(0.02)
    raise AssertionError(f"never logged {wanted!r}: {log.read_text()}")


def http(method: str, url: str, body: object = None) -> tuple[int, dict[str, str], bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=DEADLINE_S) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def post_one(port: int, event_id: str, age_s: float = 0.0) -> int:
    event = {
        "event_id": event_id,
        "event_type": "artifact_received",
        "timestamp": int((time.time() - age_s) * 1000),  # checked against the daemon's clock
        "artifact_id": "note-1",
    }
    return http("POST", f"http://127.0.0.1:{port}/v1/events", [event])[0]


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The refusal: exit code 2, nothing on stdout, exactly one line on stderr."""
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def refused_in_process(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """``main(args)`` in this process (the same code as the command): exit 2 and one line."""
    assert main(list(args)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


TYPES = ("artifact_received", "transcription_completed", "artifact_completed", "artifact_failed")


def batch(client: int, number: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat()
    return [
        {
            "event_id": f"c{client}-b{number}-{i}",
            "event_type": TYPES[i % len(TYPES)],
            "timestamp": now,
            "artifact_id": f"a{client}-{number}",
            "org_id": f"org-{(client + i) % 3}" if i % 5 else None,
            "duration_ms": 10.0 * i,
            "metadata": {"ai_cost_usd": 0.001 * i},
        }
        for i in range(40)
    ]


async def post(client: Any, body: Any, **headers: str) -> tuple[int, dict[str, Any]]:
    """POST ``body`` as JSON to ``/v1/events`` of a test client: (status, JSON answer)."""
    response = await client.post("/v1/events", json=body, headers=headers)
    return response.status, await response.json()


def stored_durations(
    tmp_path: Path, database_url: str = ""
) -> dict[str, tuple[float | None, str | None]]:
    """event_id -> (duration_ms, duration_source) as stored in the test's database."""
    from tests.backends import rows

    found = rows(
        database_url, tmp_path, "SELECT event_id, duration_ms, duration_source FROM events"
    )
    return {r["event_id"]: (r["duration_ms"], r["duration_source"]) for r in found}


async def exchange(port: int, data: bytes, wait_s: float = 10.0) -> tuple[int | None, bytes]:
    """Send ``data`` and read until the server closes; ``(status, body)``, status None when
    the connection was closed without an answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), wait_s)
    writer.close()
    if not response:
        return None, b""
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


BUSY_HEAD = (  # a request whose body never completes: the connection is busy
    b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100\r\n\r\n[{"
)


def sound_database(path: Path, rows: int = 2000) -> int:
    """A checkpointed database with a table of ``rows`` rows; returns its page count."""
    conn = open_store(path).connection
    with transaction(conn):
        conn.execute("CREATE TABLE filler (x BLOB)")
        rows_in = [(os.urandom(100),) for _ in range(rows)]
        conn.executemany("INSERT INTO filler VALUES (?)", rows_in)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path.stat().st_size // 4096


def overwrite(path: Path, page: int, data: bytes, offset: int = 0) -> None:
    with open(path, "r+b") as handle:
        handle.seek((page - 1) * 4096 + offset)
        handle.write(data)
