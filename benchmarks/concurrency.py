"""Reads while a rollup runs: realtime and history latency as a client sees it over
loopback while the daemon rolls up one hour of N events (default 400,000), against the same
reads with nothing running. Goal (issue 11): under 50 ms while the rollup runs.

Run: ``.venv/bin/python benchmarks/concurrency.py [--events 400000] [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp.test_utils import TestClient, TestServer  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from exporter.app import create_app  # noqa: E402
from exporter.http import server as http_server  # noqa: E402
from exporter.settings import Settings  # noqa: E402
from exporter.storage.sqlite.connection import connect, in_transaction  # noqa: E402
from exporter.storage.sqlite.store import SqliteStore  # noqa: E402
from exporter.timestamps import datetime_to_ms  # noqa: E402

HOUR = datetime(2026, 11, 27, 10, tzinfo=UTC)
INSERT = (
    "INSERT INTO events (event_id, event_type, ts_ms, received_ms, artifact_id, org_id, stage,"
    " duration_ms) VALUES (?, ?, ?, 0, ?, ?, ?, ?)"
)
TYPES = (("artifact_received", None), ("transcription_completed", "transcription"),
         ("claims_extracted", "claims_extraction"), ("artifact_completed", None))  # fmt: skip


class StoppedClock:
    """The daemon's clock for this run: wall time stays two hours past the rolled-up hour,
    so the hour is closed and realtime reads see the same window throughout."""

    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return 1000.0


def seed(db: Path, count: int) -> None:
    """``count`` events in one hour across 200 organisations, and the history start."""
    rng, start = random.Random(1), datetime_to_ms(HOUR)
    rows = []
    for i in range(count):
        name, stage = TYPES[i % len(TYPES)]
        rows.append((f"e{i}", name, start + rng.randrange(3_600_000), f"a{i // 4}",
                     f"org-{i % 200:03d}", stage, rng.lognormvariate(8, 1)))  # fmt: skip
    conn = connect(db, synchronous="OFF")
    in_transaction(conn, lambda c: c.executemany(INSERT, rows))
    in_transaction(conn, lambda c: SqliteStore(c).horizons.extend_history(start))
    conn.close()


async def latencies(client: Any, path: str, params: dict[str, str], until: Any) -> list[float]:
    out: list[float] = []
    while not until():
        started = time.perf_counter()
        response = await client.get(path, params=params)
        await response.read()
        out.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.005)
    return out


async def run(events: int, tmp: Path) -> None:
    db = tmp / "voxmon.db"
    seed(db, events)
    settings = Settings.load(None, {}, {"db_path": str(db), "log_level": "WARNING"})
    clock = StoppedClock(HOUR + timedelta(hours=2))
    app = create_app(settings, clock=clock, registry=CollectorRegistry(), run_scheduler=False)
    limits = http_server.Limits.of(settings)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(**http_server.runner_options(limits))
    client = TestClient(server)
    await client.start_server()
    history = {"period": "hourly", "start": "2026-11-27T00:00:00Z", "end": "2026-11-28T00:00:00Z"}
    try:
        rows: dict[str, tuple[list[float], list[float]]] = {}
        for path, params in (("/v1/metrics/realtime", {}), ("/v1/metrics/history", history)):
            t0 = time.perf_counter()
            idle = await latencies(client, path, params, lambda t0=t0: time.perf_counter() - t0 > 1)
            window = {"start": "2026-11-27T10:00:00Z", "end": "2026-11-27T11:00:00Z"}
            run = client.post("/v1/rollups/rollup-hourly/run", params=window)
            rollup = asyncio.create_task(run)
            busy = await latencies(client, path, params, rollup.done)
            took = time.perf_counter() - t0
            await (await rollup).read()
            rows[path] = (idle, busy)
            print(f"rollup of {events:,} events ran {took - 1:.2f} s beside {path} reads")
    finally:
        await client.close()
    print(f"{'read':<24} {'idle p50':>9} {'idle p99':>9} {'rollup p50':>11} {'rollup p99':>11}")
    for path, (idle, busy) in rows.items():
        print(f"{path:<24} {pct(idle, 50):>9.2f} {pct(idle, 99):>9.2f}"
              f" {pct(busy, 50):>11.2f} {pct(busy, 99):>11.2f}")  # fmt: skip
    worst = max(pct(busy, 99) for _, busy in rows.values())
    print(f"goal (p99 < 50 ms while the rollup runs): {'met' if worst < 50 else 'NOT met'}")


def pct(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100)[q - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--quick", action="store_true", help="20,000 events (smoke run)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(20_000 if args.quick else args.events, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
