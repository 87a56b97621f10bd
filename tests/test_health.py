"""Storage health in process: failure classification, and faults at the storage boundary
(an injected "disk full", a real read-only connection, a removed or replaced file) answered
with 503 + Retry-After and an honest /readyz, recovering without a restart."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from exporter.http.context import BACKEND, HEALTH
from exporter.storage.sqlite.health import FileReplaced, classify
from tests.conftest import make_event
from tests.scrape import samples, scrape


def _real_read_only(tmp_path: Path) -> BaseException:
    sqlite3.connect(tmp_path / "ro.db").execute("CREATE TABLE t (x)").connection.close()
    conn = sqlite3.connect(f"file:{tmp_path / 'ro.db'}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as failed:
        conn.execute("INSERT INTO t VALUES (1)")
    conn.close()
    return failed.value


def _real_busy(tmp_path: Path) -> BaseException:
    holder = sqlite3.connect(tmp_path / "busy.db", isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(tmp_path / "busy.db", timeout=0, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError) as failed:
        other.execute("BEGIN IMMEDIATE")
    holder.close()
    other.close()
    return failed.value


def _real_corrupt(tmp_path: Path) -> BaseException:
    (tmp_path / "junk.db").write_bytes(b"junk" * 1024)
    with pytest.raises(sqlite3.DatabaseError) as failed:
        sqlite3.connect(tmp_path / "junk.db").execute("SELECT * FROM sqlite_master")
    return failed.value


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda t: sqlite3.OperationalError("database or disk is full"), "disk_full"),
        (lambda t: sqlite3.OperationalError("disk I/O error"), "io_error"),
        (lambda t: sqlite3.OperationalError("attempt to write a readonly database"), "read_only"),
        (lambda t: sqlite3.OperationalError("unable to open database file"), "cannot_open"),
        (lambda t: sqlite3.OperationalError("database is locked"), "busy"),
        (lambda t: sqlite3.DatabaseError("database disk image is malformed"), "corrupt"),
        (lambda t: FileReplaced("gone"), "replaced"),
        (lambda t: OSError(errno.ENOSPC, "No space left on device"), "disk_full"),
        (lambda t: OSError(errno.EROFS, "Read-only file system"), "read_only"),
        (_real_read_only, "read_only"),
        (_real_busy, "busy"),
        (_real_corrupt, "corrupt"),
        (lambda t: sqlite3.IntegrityError("UNIQUE constraint failed: events.event_id"), None),
        (lambda t: sqlite3.OperationalError("no such table: nope"), None),
        (lambda t: RuntimeError("a bug"), None),
    ],
)
def test_health_classify(
    tmp_path: Path, make: Callable[[Path], BaseException], kind: str | None
) -> None:
    assert classify(make(tmp_path)) == kind


def services(client: Any) -> Any:
    app = client.server.app
    return SimpleNamespace(db=app[BACKEND].writes, health=app[HEALTH])


async def storage_metrics(client: Any) -> dict[str, float]:
    found = samples(await scrape(client), "voxmon_storage_")
    return {
        dict(labels).get("kind", name): value
        for (name, labels), value in found.items()
        if not name.endswith("_created") and (value or name == "voxmon_storage_healthy")
    }


async def answer(client: Any, method: str, path: str, body: Any = None) -> tuple[int, str, str]:
    """Status, Retry-After and the error message (or the body's status) of one request."""
    response = await client.request(method, path, json=body)
    payload = await response.json()
    message = payload["error"]["message"] if "error" in payload else str(payload)
    return response.status, response.headers.get("Retry-After", ""), message


DISK_FULL = "storage cannot commit (disk_full): database or disk is full; retrying every 2 s"


async def test_health_disk_full_refuses_then_recovers(
    start_app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await start_app()
    svc = services(client)
    db, health = svc.db, svc.health
    real_run = db.run
    full = {"on": False}

    async def run(fn: Callable[..., Any], *args: object) -> Any:  # the injected fault
        if full["on"]:
            raise sqlite3.OperationalError("database or disk is full")
        return await real_run(fn, *args)

    monkeypatch.setattr(db, "run", run)
    assert (await client.post("/v1/events", json=[make_event(event_id="e1")])).status == 200
    full["on"] = True
    batch = [make_event(event_id="e2"), make_event(event_id="e3")]
    assert await answer(client, "POST", "/v1/events", batch) == (503, "2", DISK_FULL)
    assert await answer(client, "GET", "/readyz") == (503, "2", DISK_FULL)
    assert (await client.get("/healthz")).status == 200  # liveness only
    assert await storage_metrics(client) == {"voxmon_storage_healthy": 0.0, "disk_full": 1.0}
    assert await answer(client, "POST", "/v1/events", batch) == (503, "2", DISK_FULL)
    assert (await storage_metrics(client))["disk_full"] == 1.0  # refused without a commit
    assert await health.probe() is False
    assert (await storage_metrics(client))["disk_full"] == 2.0
    full["on"] = False  # space returns
    assert await health.probe() is True
    assert await answer(client, "GET", "/readyz") == (200, "", "{'status': 'ready'}")
    assert await storage_metrics(client) == {"voxmon_storage_healthy": 1.0, "disk_full": 2.0}
    response = await client.post("/v1/events", json=[*batch, make_event(event_id="e1")])
    assert (response.status, await response.json()) == (
        200,
        {"accepted": 2, "duplicates": 1, "rejected": [], "warnings": []},
    )  # fmt: skip (nothing of the refused posts was stored)


READ_ONLY = (
    "storage cannot commit (read_only): attempt to write a readonly database; retrying every 2 s"
)


async def test_health_read_only_connection_recovers_without_restart(start_app: Any) -> None:
    """A connection that became read-only stays so after the cause is gone (here SQLite's
    ``query_only``, set at the storage boundary); the probe reopens it, so no restart is
    needed."""
    client = await start_app()
    svc = services(client)
    assert (await client.post("/v1/events", json=[make_event(event_id="e1")])).status == 200
    await svc.db.run(lambda store: store.connection.execute("PRAGMA query_only = ON"))
    one = [make_event(event_id="e2")]
    assert await answer(client, "POST", "/v1/events", one) == (503, "2", READ_ONLY)
    assert await answer(client, "GET", "/readyz") == (503, "2", READ_ONLY)
    assert await answer(client, "POST", "/v1/events", one) == (503, "2", READ_ONLY)
    assert await storage_metrics(client) == {"voxmon_storage_healthy": 0.0, "read_only": 1.0}
    assert await svc.health.probe() is True  # the old connection fails, a reopened one works
    assert await answer(client, "GET", "/readyz") == (200, "", "{'status': 'ready'}")
    assert await storage_metrics(client) == {"voxmon_storage_healthy": 1.0, "read_only": 2.0}
    response = await client.post("/v1/events", json=one)
    assert (await response.json())["accepted"] == 1


@pytest.mark.parametrize("how", ["removed", "replaced by another file"])
async def test_health_removed_or_replaced_file_is_never_acknowledged(
    start_app: Any, tmp_path: Path, how: str
) -> None:
    (tmp_path / "data").mkdir()
    db = tmp_path / "data" / "voxmon.db"
    client = await start_app(db_path=str(db))
    svc = services(client)
    assert (await client.post("/v1/events", json=[make_event(event_id="e1")])).status == 200
    if how == "removed":
        shutil.rmtree(tmp_path / "data")
    else:
        sqlite3.connect(tmp_path / "other.db").close()
        os.replace(tmp_path / "other.db", db)
    reason = (
        f"database file {db} was {how} while voxmon was running;"
        " restart voxmon (no write is acknowledged until then)"
    )
    one = [make_event(event_id="e2")]
    assert await answer(client, "POST", "/v1/events", one) == (503, "60", reason)
    assert await answer(client, "GET", "/readyz") == (503, "60", reason)
    assert await svc.health.probe() is False  # final: only a restart helps
    assert await answer(client, "POST", "/v1/events", one) == (503, "60", reason)
    assert await storage_metrics(client) == {"voxmon_storage_healthy": 0.0, "replaced": 1.0}
    counted = samples(await scrape(client), "voice_pipeline_events_total")
    assert list(counted.values()) == [1.0]  # e2 was never counted live either
