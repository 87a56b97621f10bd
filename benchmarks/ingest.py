"""Ingest benchmark: events/s over HTTP with durability (200 only after the SQLite commit,
synchronous=FULL, WAL) for batches of 1, 100 and 1000 from concurrent clients, against the
raw SQLite insert rate of the same rows in the same run. The ratio is the figure.

Goal (issue 2): HTTP >= half the raw rate, and >= 25,000 events/s for batches of 1000, on a
2-core machine. Client and daemon share those two cores; the figures include that.
Run: ``.venv/bin/python benchmarks/ingest.py [--quick] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter.storage.database import connect, in_transaction  # noqa: E402
from exporter.storage.events import insert  # noqa: E402
from exporter.timestamps import datetime_to_ms  # noqa: E402
from exporter.validation import Horizon, validate_items  # noqa: E402

FLOW = [
    ("artifact_received", None),
    ("transcription_started", None),
    ("transcription_completed", {"confidence": 0.93, "transcript_word_count": 180}),
    ("claims_extraction_started", None),
    ("claims_extracted", {"claim_count": 4, "confidence": 0.81, "ai_cost_usd": 0.004}),
    ("entity_resolution_started", None),
    ("entity_resolution_completed", {"entity_count": 5, "auto_resolved_count": 4,
                                     "disambiguation_count": 1}),
    ("draft_generation_started", None),
    ("drafts_generated", {"draft_count": 2, "ai_cost_usd": 0.012, "ai_model": "m-large"}),
    ("artifact_completed", None),
]  # fmt: skip
# (batch size, concurrent clients, events to send) per scenario
SCENARIOS = [(1, 16, 12_000), (100, 8, 150_000), (1000, 4, 300_000)]
QUICK = [(1, 4, 400), (100, 4, 4_000), (1000, 2, 8_000)]


def make_events(count: int, tag: str) -> list[dict[str, Any]]:
    """Realistic pipeline events: 50 orgs, durations on successes, metadata, timestamps now."""
    rng = random.Random(tag)
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    events = []
    for i in range(count):
        event_type, meta = FLOW[i % len(FLOW)]
        event: dict[str, Any] = {
            "event_id": f"{tag}-{i}",
            "event_type": event_type,
            "timestamp": now,
            "artifact_id": f"{tag}-note-{i // len(FLOW)}",
            "org_id": f"org-{rng.randrange(50)}",
        }
        if event_type.endswith(("completed", "extracted", "generated")):
            event["duration_ms"] = round(rng.lognormvariate(7, 0.8), 1)
        if meta:
            event["metadata"] = meta
        events.append(event)
    return events


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_ready(base: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(400):
            try:
                async with session.get(f"{base}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("daemon did not become ready")


async def post_all(base: str, bodies: list[bytes], clients: int, per_body: int) -> list[float]:
    """Post every body (each client takes the next one); returns request latencies (s)."""
    queue = list(reversed(bodies))
    latencies: list[float] = []
    headers = {"Content-Type": "application/json"}

    async def client(session: aiohttp.ClientSession) -> None:
        while queue:
            body = queue.pop()
            started = time.perf_counter()
            async with session.post(f"{base}/v1/events", data=body, headers=headers) as response:
                result = await response.json()
                if response.status != 200 or result["accepted"] != per_body:
                    raise RuntimeError(f"unexpected answer {response.status}: {result}")
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return latencies


def http_rate(base: str, batch: int, clients: int, total: int) -> dict[str, float]:
    events = make_events(total, f"http{batch}")
    bodies = [msgspec.json.encode(events[i : i + batch]) for i in range(0, total, batch)]
    started = time.perf_counter()
    latencies = asyncio.run(post_all(base, bodies, clients, batch))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "events_per_s": total / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


def raw_rate(directory: Path, batch: int, total: int) -> float:
    """The same rows inserted straight into a fresh file with the same schema and pragmas,
    one transaction per batch (validation done beforehand, outside the timing)."""
    events = make_events(total, f"raw{batch}")
    now_ms = datetime_to_ms(datetime.now(UTC))
    raw = [msgspec.json.encode(e) for e in events]
    valid, rejected = validate_items(raw, now_ms, Horizon())
    assert not rejected
    conn = connect(directory / f"raw-{batch}.db")
    started = time.perf_counter()
    for i in range(0, len(valid), batch):
        chunk = valid[i : i + batch]
        in_transaction(conn, lambda c, chunk=chunk: insert(c, chunk, now_ms))  # type: ignore[misc]
    elapsed = time.perf_counter() - started
    conn.close()
    return total / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts (smoke test)")
    parser.add_argument("--json", action="store_true", help="also print results as JSON")
    args = parser.parse_args()
    scenarios = QUICK if args.quick else SCENARIOS
    print(f"machine: {os.cpu_count()} cpus, Python {platform.python_version()};"
          " client and daemon share the machine")  # fmt: skip
    results = []
    with tempfile.TemporaryDirectory(prefix="voxmon-bench-") as tmp:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "exporter", "serve", "--db", f"{tmp}/bench.db",
                   "--port", str(port), "--log-level", "WARNING"]  # fmt: skip
        daemon = subprocess.Popen(command, cwd=ROOT)
        try:
            asyncio.run(wait_ready(base))
            for batch, clients, total in scenarios:
                figures = http_rate(base, batch, clients, total)
                figures["raw_rows_per_s"] = raw_rate(Path(tmp), batch, min(total, 100_000))
                figures.update(batch=batch, clients=clients, events=total)
                results.append(figures)
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)
    print(f"{'batch':>6}{'clients':>8}{'events':>9}{'HTTP ev/s':>12}{'raw rows/s':>12}"
          f"{'ratio':>7}{'p50 ms':>9}{'p99 ms':>9}")  # fmt: skip
    for r in results:
        ratio = r["events_per_s"] / r["raw_rows_per_s"]
        print(
            f"{r['batch']:>6}{r['clients']:>8}{r['events']:>9}{r['events_per_s']:>12,.0f}"
            f"{r['raw_rows_per_s']:>12,.0f}{ratio:>7.2f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
        )
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
