"""Read-API benchmark: server-side p50/p99 (from the ``Server-Timing`` header) of
``/v1/metrics/realtime`` with 1,000 orgs live, and of history, stages, summary and orgs over 90 days
of daily snapshots for 1,000 orgs. Prints a table of figures.

Goal (issue 4): realtime p99 <= 2 ms, each range query <= 100 ms, on a 2-core machine;
issue 15: history p99 <= 20 ms, orgs top 100 <= 50 ms and all 1,000 <= 300 ms.
Run: ``.venv/bin/python benchmarks/queries.py [--orgs 1000] [--days 90] [--requests 200]``.

``--database-url postgresql://user@host:port/db`` runs the daemon on PostgreSQL instead, in a
throwaway database ``voxmon_bench_<pid>_queries`` with voxmon's own schema (the URL's database
is only used to create and drop it), vacuumed and analyzed after loading. ``--json`` prints,
as the last line, a JSON object: query name -> {"n", "p50_ms", "p99_ms", "first_ms"}; the
first request of each query is untimed in the percentiles and reported as "first_ms".

The timed requests start once the daemon's one integrity check after start has ended
(``StorageHealth.integrity_checked``): it reads the whole file on a thread of its own, and
requests timed while it runs measure the check (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.databases import Server  # noqa: E402
from exporter.app import create_app  # noqa: E402
from exporter.http import server as http_server  # noqa: E402
from exporter.http.context import HEALTH  # noqa: E402
from exporter.records import SnapshotRow  # noqa: E402
from exporter.settings import Settings  # noqa: E402
from exporter.storage.postgres import connection as pg  # noqa: E402
from exporter.storage.postgres.store import PgStore  # noqa: E402
from exporter.storage.sqlite.connection import connect  # noqa: E402
from exporter.storage.sqlite.store import SqliteStore  # noqa: E402
from exporter.timestamps import datetime_to_ms  # noqa: E402
from rollup.codec import encode_parts  # noqa: E402
from rollup.digest import LatencyDigest  # noqa: E402
from rollup.parts import SnapshotParts, StageParts  # noqa: E402

DAY = timedelta(days=1)


def synthetic_parts(rng: random.Random, scale: int) -> SnapshotParts:
    """A busy org-day: realistic counts and four stage digests plus end to end."""

    def digest() -> LatencyDigest:
        return LatencyDigest.of(rng.lognormvariate(7, 1) for _ in range(200))

    stages = {
        stage: StageParts(scale, scale - 2, 2, digest(), 0.01 * scale)
        for stage in ("transcription", "claims_extraction", "entity_resolution",
                      "draft_generation")
    }  # fmt: skip
    return SnapshotParts(
        artifacts_received=scale, artifacts_completed=scale - 3, artifacts_failed=3,
        stages=stages, end_to_end=digest(), ai_cost_usd=0.05 * scale,
    )  # fmt: skip


def build_snapshots(target: str, orgs: int, days: int, today: datetime) -> int:
    """Daily snapshots for ``days`` days and ``orgs`` orgs (+ platform), written directly
    with the backend's own storage: ``target`` is a SQLite path or a PostgreSQL URL."""
    rng = random.Random(1)
    templates = [synthetic_parts(rng, 50 + i) for i in range(20)]
    postgres = target.startswith("postgresql://")
    store: Any = (
        PgStore(pg.connect(target))
        if postgres
        else SqliteStore(connect(Path(target), synchronous="OFF"))
    )
    written = 0
    try:
        for d in range(days, 0, -1):
            start = datetime_to_ms(today - d * DAY)
            rows = []
            for scope in ["", *(f"org-{i:04d}" for i in range(orgs))]:
                parts = templates[(hash(scope) + d) % len(templates)]
                rows.append(SnapshotRow(
                    "daily", start, scope, parts.artifacts_received, parts.artifacts_completed,
                    parts.artifacts_failed, parts.ai_cost_usd, encode_parts(parts),
                    parts.end_to_end.to_bytes(),
                ))  # fmt: skip
            with store.transaction():
                store.snapshots.replace_snapshots("daily", start, rows)
            written += len(rows)
        if postgres:  # as autovacuum leaves it: statistics and the visibility map
            store.connection.execute("VACUUM ANALYZE snapshots")
    finally:
        store.close()
    return written


Timed = tuple[float, list[float]]
"""The server's time for the first request of a query, and for the ``count`` after it."""


async def timings(client: Any, path: str, params: dict[str, str], count: int) -> Timed:
    """One first request, reported on its own: it pays what a query pays once per process
    (encoder tables, first numpy calls, a read thread's connection), which is not what the
    percentiles describe. Then ``count`` timed requests, sorted."""
    out = []
    for _ in range(count + 1):
        response = await client.get(path, params=params)
        assert response.status == 200, await response.text()
        await response.read()
        out.append(float(response.headers["Server-Timing"].split("dur=")[1]))
    return out[0], sorted(out[1:])


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


async def run(args: argparse.Namespace, target: str) -> list[tuple[str, Timed]]:
    now = datetime.now(UTC).replace(microsecond=0)
    today = now.replace(hour=0, minute=0, second=0)
    started = time.perf_counter()
    rows = build_snapshots(target, args.orgs, args.days, today)
    print(f"setup: {rows:,} daily snapshot rows in {time.perf_counter() - started:.1f} s")
    where = "database_url" if target.startswith("postgresql://") else "db_path"
    settings = Settings.load(None, {}, {where: target, "log_level": "WARNING"})
    app = create_app(settings, registry=CollectorRegistry(), run_scheduler=False)
    limits = http_server.Limits.of(settings)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(**http_server.runner_options(limits))
    client = TestClient(server)
    await client.start_server()
    try:
        stamp = now.isoformat()
        events = [{"event_id": f"live-{i}", "event_type": "artifact_received", "timestamp": stamp,
                   "artifact_id": f"n{i}", "org_id": f"org-{i % args.orgs:04d}"}
                  for i in range(5 * args.orgs)]  # fmt: skip
        for i in range(0, len(events), 1000):
            assert (await client.post("/v1/events", json=events[i : i + 1000])).status == 200
        started = time.perf_counter()
        await app[HEALTH].integrity_checked.wait()
        print(f"start-up integrity check: {time.perf_counter() - started:.2f} s more, waited for")
        window = {"period": "daily", "start": (today - args.days * DAY).isoformat(),
                  "end": today.isoformat()}  # fmt: skip
        n = args.requests
        return [
            ("realtime (platform)", await timings(client, "/v1/metrics/realtime", {}, n)),
            ("realtime (one org)", await timings(client, "/v1/metrics/realtime",
                                                 {"org_id": "org-0500"}, n)),
            (f"history {args.days} d platform", await timings(client, "/v1/metrics/history",
                                                              window, n // 4)),
            (f"history {args.days} d one org", await timings(
                client, "/v1/metrics/history", {**window, "org_id": "org-0500"}, n // 4)),
            (f"stages {args.days} d platform", await timings(client, "/v1/metrics/stages",
                                                             window, n // 4)),
            (f"summary {args.days} d platform", await timings(
                client, "/v1/metrics/summary", {"start": window["start"], "end": window["end"]},
                n // 4)),
            (f"summary {args.days} d one org", await timings(
                client, "/v1/metrics/summary",
                {"start": window["start"], "end": window["end"], "org_id": "org-0500"}, n // 4)),
            (f"summary {args.days} d + edge hours", await timings(
                client, "/v1/metrics/summary", {"start": (today - args.days * DAY + DAY / 2)
                                                .isoformat(), "end": stamp}, n // 4)),
            (f"orgs {args.days} d (top 100)", await timings(client, "/v1/metrics/orgs",
                                                            window, n // 10)),
            (f"orgs {args.days} d (all {args.orgs})", await timings(
                client, "/v1/metrics/orgs", {**window, "limit": "1000"}, n // 10)),
        ]  # fmt: skip
    finally:
        await client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orgs", type=int, default=1000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--database-url", metavar="URL",
                        help="postgresql://...: on PostgreSQL (a throwaway database)")  # fmt: skip
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    print(f"machine: {os.cpu_count()} cpus, Python {platform.python_version()}")
    try:
        results = measure(args)
    except (psycopg.Error, ValueError) as exc:
        print(f"queries benchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"{'query':<32}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'first ms':>10}")
    for name, (first, values) in results:
        print(f"{name:<32}{len(values):>6}{pct(values, 0.5):>10.3f}{pct(values, 0.99):>10.3f}"
              f"{first:>10.3f}")  # fmt: skip
    if args.json:
        figures = {name: {"n": len(values), "p50_ms": pct(values, 0.5),
                          "p99_ms": pct(values, 0.99), "first_ms": first}
                   for name, (first, values) in results}  # fmt: skip
        print(json.dumps(figures))
    return 0


def measure(args: argparse.Namespace) -> list[tuple[str, Timed]]:
    """The run on a throwaway SQLite file or PostgreSQL database, removed afterwards."""
    if args.database_url:
        server = Server(args.database_url)
        print(f"PostgreSQL {server.version}")
        with server.database("queries") as url:
            return asyncio.run(run(args, url))
    with tempfile.TemporaryDirectory(prefix="voxmon-bench-") as tmp:
        return asyncio.run(run(args, str(Path(tmp) / "voxmon.db")))


if __name__ == "__main__":
    sys.exit(main())
