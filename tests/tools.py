"""Test helpers shared by test modules: external tools (from Debian's packages), a real
``voxmon serve`` subprocess on a free loopback port, and what the client tests read back."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from voxmon_client import ClientStats

from exporter.storage.sqlite.connection import connect
from exporter.storage.sqlite.store import SqliteStore


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
