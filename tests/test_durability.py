"""Crash durability: the daemon as a subprocess, SIGKILLed while clients post batches."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from tests.backends import both, rows
from tests.scrape import domain_samples
from tests.tools import batch, daemon, free_port, wait_ready


async def client_loop(base: str, client: int, acked: list[str], stop: asyncio.Event) -> None:
    async with aiohttp.ClientSession() as session:
        for number in range(10_000):
            if stop.is_set():
                return
            events = batch(client, number)
            body = msgspec.json.encode(
                [{k: v for k, v in e.items() if v is not None} for e in events]
            )
            try:
                async with session.post(
                    f"{base}/v1/events", data=body, headers={"Content-Type": "application/json"}
                ) as response:
                    if response.status == 200:
                        assert (await response.json())["accepted"] == len(events)
                        acked.extend(e["event_id"] for e in events)
            except (TimeoutError, aiohttp.ClientError):
                return


def recount(
    database_url: str, tmp_path: Path
) -> tuple[dict[tuple[str, ...], float], dict[tuple[str, ...], float]]:
    """Persisted totals vs the same numbers counted from the stored events."""

    def query(sql: str) -> list[tuple[Any, ...]]:
        return [tuple(row.values()) for row in rows(database_url, tmp_path, sql)]

    persisted = {
        tuple(msgspec.json.decode(key)): value
        for key, value in query("SELECT key, value FROM live_counters")
        if not key.startswith('["ai_cost') and "duration_sum" not in key
    }
    counted: dict[tuple[str, ...], float] = {}
    for event_type, n in query("SELECT event_type, COUNT(*) FROM events GROUP BY 1"):
        counted[("events_total", event_type)] = n
    outcome = {"artifact_received": "received", "artifact_completed": "completed",
               "artifact_failed": "failed"}  # fmt: skip
    for event_type, org, n in query(
        "SELECT event_type, COALESCE(org_id, ''), COUNT(*) FROM events"
        " WHERE event_type LIKE 'artifact_%' GROUP BY 1, 2"
    ):
        counted[("artifacts_total", org, outcome[event_type])] = n
    for org, n in query(
        "SELECT COALESCE(org_id, ''), COUNT(*) FROM events"
        " WHERE event_type = 'transcription_completed' GROUP BY 1"
    ):
        counted[("stage_outcomes_total", "transcription", "success", org)] = n
    ((n,),) = query("SELECT COUNT(*) FROM events WHERE event_type = 'transcription_completed'")
    counted[("stage_duration_count", "transcription")] = n
    ((n,),) = query("SELECT COUNT(*) FROM events WHERE event_type = 'artifact_completed'")
    counted[("e2e_duration_count",)] = n
    persisted = {k: v for k, v in persisted.items() if not k[0].endswith("_bucket")}
    return persisted, counted


@both
async def test_sigkill_mid_stream_loses_no_acknowledged_event(
    tmp_path: Path, database_url: str
) -> None:
    db, port = tmp_path / "voxmon.db", free_port()
    url = ("--database-url", database_url) if database_url else ()
    base = f"http://127.0.0.1:{port}"
    acked: list[str] = []
    with daemon(db, port, *url) as process:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, base)
        stop = asyncio.Event()
        clients = [asyncio.create_task(client_loop(base, c, acked, stop)) for c in range(6)]
        while len(acked) < 4000:
            await asyncio.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        await asyncio.wait_for(asyncio.gather(*clients), timeout=30)
        stop.set()
    assert len(acked) == len(set(acked)) >= 4000

    with daemon(db, port, *url):
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, base)
            async with session.get(f"{base}/metrics") as response:
                samples = domain_samples(await response.text())

    stored = [
        row["event_id"] for row in rows(database_url, tmp_path, "SELECT event_id FROM events")
    ]
    assert len(stored) == len(set(stored))
    assert set(acked) <= set(stored)
    persisted, counted = recount(database_url, tmp_path)
    assert persisted == counted
    served = {
        labels[0][1]: value
        for (name, labels), value in samples.items()
        if name == "voice_pipeline_events_total"
    }
    assert served == {k[1]: v for k, v in counted.items() if k[0] == "events_total"}
    assert sum(served.values()) == len(stored)
    (cost,) = rows(database_url, tmp_path, "SELECT SUM(ai_cost_usd) AS s FROM events")[0].values()
    (kept,) = rows(
        database_url,
        tmp_path,
        "SELECT SUM(value) AS s FROM live_counters WHERE key LIKE '[\"ai_cost_usd_total\"%'",
    )[0].values()
    assert kept == pytest.approx(cost, rel=1e-9)
    print(f"acknowledged {len(acked)}, stored {len(stored)}")
