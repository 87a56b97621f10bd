"""Each backend's concurrency (SQLite and PostgreSQL): queries run on their own read pool,
so they never wait behind a commit in progress or a rollup's long read (datasette's
pattern)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from exporter.http.context import BACKEND
from tests.backends import both
from tests.conftest import make_event

pytestmark = both


async def test_backend_reads_never_wait_behind_writes_or_rollup_reads(start_app: Any) -> None:
    """The writer's thread and the rollup's read thread are both held busy (as a long
    group commit and a 400k-event hourly rollup hold them); realtime, history, stages,
    organisation and artifact reads are all answered meanwhile."""
    client = await start_app()
    assert (await client.post("/v1/events", json=[make_event()])).status == 200
    backend = client.app[BACKEND]
    release = threading.Event()
    held = [
        asyncio.create_task(backend.writes.run(lambda _s: release.wait(30))),
        asyncio.create_task(backend.rollup_reads.run(lambda _s: release.wait(30))),
    ]
    try:
        await asyncio.sleep(0)  # both threads now block
        for path, query in (
            ("/v1/metrics/realtime", {}),
            ("/v1/metrics/history", {"period": "hourly", "start": "0", "end": "3600000"}),
            ("/v1/metrics/stages", {"period": "daily", "start": "0", "end": "86400000"}),
            ("/v1/metrics/orgs", {"period": "daily", "start": "0", "end": "86400000"}),
            ("/v1/artifacts", {"state": "in_flight"}),
            ("/v1/artifacts/art-1/events", {}),
            ("/v1/orgs", {}),
        ):
            response = await asyncio.wait_for(client.get(path, params=query), timeout=10)
            assert response.status == 200, path
        assert not any(task.done() for task in held)  # the answers did not wait for them
    finally:
        release.set()
        await asyncio.gather(*held)
