"""Rollup benchmark: the hourly job over 100k and 1M events in one hour across 200 orgs,
and the daily job merging 24 x 200 hourly rows. Prints a table of figures.

Goal (issue 3): a 1M-event hour in under 3 s, a day in under 100 ms on a 2-core machine.
Run: ``.venv/bin/python benchmarks/rollup.py [--sizes 100000,1000000] [--json]``.

``--database-url postgresql://user@host:port/db`` runs the same jobs on PostgreSQL instead of
SQLite, each input in a throwaway database ``voxmon_bench_<pid>_<input>`` with voxmon's own
schema (the URL's database is only used to create and drop them). The events are loaded
with COPY and the table vacuumed and analyzed, as autovacuum leaves it; loading is untimed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.databases import Server  # noqa: E402
from exporter.catalog import EVENT_TYPES  # noqa: E402
from exporter.storage.postgres import connection as pg  # noqa: E402
from exporter.storage.postgres.partitions import Partitions  # noqa: E402
from exporter.storage.postgres.store import PgStore  # noqa: E402
from exporter.storage.sqlite.connection import connect, in_transaction  # noqa: E402
from exporter.storage.sqlite.store import SqliteStore  # noqa: E402
from exporter.timestamps import datetime_to_ms  # noqa: E402
from rollup import jobs  # noqa: E402

HOUR = datetime(2026, 11, 27, 10, tzinfo=UTC)
NOW = HOUR + timedelta(days=1)
"""When the jobs run: the hour and its day are closed."""
ORGS = [f"org-{i:03d}" for i in range(200)]
MIX = [
    ("artifact_received", 0.12), ("transcription_started", 0.1),
    ("transcription_completed", 0.1), ("claims_extraction_started", 0.09),
    ("claims_extracted", 0.09), ("entity_resolution_started", 0.08),
    ("entity_resolution_completed", 0.06), ("entity_needs_disambiguation", 0.02),
    ("draft_generation_started", 0.07), ("drafts_generated", 0.07),
    ("artifact_completed", 0.1), ("transcription_failed", 0.01), ("artifact_failed", 0.01),
    ("draft_confirmed", 0.05), ("retry_initiated", 0.01), ("rate_limit_hit", 0.02),
]  # fmt: skip
INSERT = (
    "INSERT INTO events (event_id, event_type, ts_ms, received_ms, artifact_id, org_id, stage,"
    " duration_ms, ai_cost_usd, confidence, entity_count, auto_resolved_count,"
    " disambiguation_count, claim_count, draft_count)"
    " VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def rows(count: int, start_ms: int, seed: int = 1) -> list[tuple[object, ...]]:
    """Events spread over one hour, in event-time order: the daemon stores events as they
    arrive, which is event-time order give or take the pipeline's delivery lag."""
    rng = random.Random(seed)
    names = [name for name, _ in MIX]
    weights = [w for _, w in MIX]
    types = rng.choices(names, weights, k=count)
    out: list[tuple[Any, ...]] = []
    for i, name in enumerate(types):
        kind = EVENT_TYPES[name]
        timed = kind.kind.value in ("success", "artifact_success") and rng.random() < 0.9
        out.append((
            f"e{seed}-{i}", name, start_ms + rng.randrange(3_600_000), f"a{i // 8}",
            rng.choice(ORGS) if rng.random() < 0.97 else None, kind.stage,
            rng.lognormvariate(7, 1) if timed else None,
            rng.random() * 0.01 if rng.random() < 0.5 else None,
            rng.random() if name in ("transcription_completed", "claims_extracted") else None,
            rng.randint(0, 9) if "entity" in name else None,
            rng.randint(0, 5) if "entity" in name else None,
            rng.randint(0, 4) if "entity" in name else None,
            rng.randint(0, 12) if name == "claims_extracted" else None,
            rng.randint(1, 4) if name == "drafts_generated" else None,
        ))  # fmt: skip
    out.sort(key=lambda row: int(row[2]))
    return out


# --- the stores: SQLite or PostgreSQL, loaded with the rows --------------------------------

Execute = Callable[[str, Sequence[object]], list[Any]]
"""Runs one statement with ``?`` placeholders on the loaded store's connection."""
Loaded = tuple[Any, Execute]
Opener = Callable[[str, list[tuple[object, ...]]], AbstractContextManager[Loaded]]
"""``opener(name, rows)``: a fresh store called ``name`` holding ``rows``."""


def sqlite_opener(directory: Path) -> Opener:
    @contextmanager
    def opened(name: str, data: list[tuple[object, ...]]) -> Iterator[Loaded]:
        conn = connect(directory / f"{name}.db", synchronous="OFF")
        try:
            in_transaction(conn, lambda c: c.executemany(INSERT, data))
            yield SqliteStore(conn), lambda sql, args: conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    return opened


def postgres_opener(server: Server) -> Opener:
    @contextmanager
    def opened(name: str, data: list[tuple[object, ...]]) -> Iterator[Loaded]:
        with server.database(name.replace("-", "_")) as url:
            conn = pg.connect(url)  # voxmon's own schema
            try:
                copy_rows(conn, data)

                def execute(sql: str, args: Sequence[object]) -> list[Any]:
                    cursor = conn.execute(sql.replace("?", "%s"), args)
                    return cursor.fetchall() if cursor.description else []

                yield PgStore(conn), execute
            finally:
                conn.close()

    return opened


def copy_rows(conn: pg.Connection, data: list[tuple[object, ...]]) -> None:
    """The rows into their day partitions with COPY, then VACUUM ANALYZE (untimed)."""
    Partitions(conn).ensure({row[2] for row in data})  # type: ignore[misc]
    columns = INSERT.split("(", 1)[1].split(")", 1)[0]
    with (
        conn.transaction(),
        conn.cursor() as cursor,
        cursor.copy(f"COPY events ({columns}) FROM STDIN") as copy,
    ):
        for row in data:
            copy.write_row((*row[:3], 0, *row[3:]))  # received_ms 0, as INSERT says
    conn.execute("VACUUM ANALYZE events")


# --- the jobs ------------------------------------------------------------------------------


def bench_hour(opener: Opener, count: int) -> dict[str, float]:
    with opener(f"hour-{count}", rows(count, datetime_to_ms(HOUR))) as (store, _):
        with store.transaction():
            store.horizons.extend_history(datetime_to_ms(HOUR))
        write = jobs.direct_write(store)
        timings, cpu = [], []
        for _ in range(3):
            started, used = time.perf_counter(), time.process_time()
            written = jobs.rollup_hour(store, write, HOUR, NOW)
            timings.append(time.perf_counter() - started)
            cpu.append(time.process_time() - used)
    # On SQLite the whole job runs in this process, so its CPU seconds are a figure that other
    # load on the machine disturbs less than the wall time (PostgreSQL's work is the server's).
    return {
        "events": count,
        "rows": written,
        "best_s": min(timings),
        "median_s": sorted(timings)[1],
        "process_cpu_s": min(cpu),
    }


SHIFT = "UPDATE snapshots SET period_start_ms = period_start_ms + ? WHERE period = 'hourly'"
COPY_HOUR = (
    "INSERT INTO snapshots (period, period_start_ms, scope, artifacts_received,"
    " artifacts_completed, artifacts_failed, ai_cost_usd, end_to_end, parts)"
    " SELECT period, period_start_ms + ?, scope, artifacts_received, artifacts_completed,"
    " artifacts_failed, ai_cost_usd, end_to_end, parts FROM snapshots"
    " WHERE period = 'hourly' AND period_start_ms = ?"
)


def bench_day(opener: Opener, events: int = 200_000) -> dict[str, float]:
    """24 hourly rows for each of 200 orgs (+ platform), copied from one real busy hour."""
    base = datetime_to_ms(HOUR)
    with opener("day", rows(events, base, seed=2)) as (store, execute):
        with store.transaction():
            store.horizons.extend_history(base - 36_000_000)
        write = jobs.direct_write(store)
        jobs.rollup_hour(store, write, HOUR, NOW)
        with store.transaction():
            execute(SHIFT, (-10 * 3_600_000,))
            for h in range(1, 24):
                execute(COPY_HOUR, (h * 3_600_000, base - 10 * 3_600_000))
        hourly = execute("SELECT COUNT(*) FROM snapshots WHERE period = 'hourly'", ())[0][0]
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            written = jobs.rollup_day(store, write, HOUR.replace(hour=0), NOW)
            timings.append(time.perf_counter() - started)
    return {"hourly_rows": hourly, "rows": written, "best_s": min(timings),
            "median_s": sorted(timings)[2]}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--day-events", type=int, default=200_000,
                        help="events in the hour copied 24 times for the daily job")  # fmt: skip
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--database-url", metavar="URL",
                        help="postgresql://...: on PostgreSQL (throwaway databases)")  # fmt: skip
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so throwaway databases and the temp dir are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    print(f"machine: {os.cpu_count()} cpus, Python {platform.python_version()}")
    try:
        server = Server(args.database_url) if args.database_url else None
        if server is not None:
            print(f"PostgreSQL {server.version}, events loaded with COPY (untimed)")
        with tempfile.TemporaryDirectory(prefix="voxmon-bench-") as tmp:
            opener = sqlite_opener(Path(tmp)) if server is None else postgres_opener(server)
            results = run(opener, args)
    except (psycopg.Error, ValueError) as exc:
        print(f"rollup benchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(results))
    return 0


def run(opener: Opener, args: argparse.Namespace) -> dict[str, object]:
    """Every job of the table, printed as it completes."""
    results: dict[str, object] = {}
    print(f"{'job':<28}{'input':>16}{'rows out':>10}{'best s':>10}{'median s':>10}")
    for size in (int(s) for s in args.sizes.split(",")):
        r = bench_hour(opener, size)
        results[f"hourly_{size}"] = r
        label = f"{size:,} events"
        print(f"{'rollup-hourly (1 hour)':<28}{label:>16}{r['rows']:>10}"
              f"{r['best_s']:>10.3f}{r['median_s']:>10.3f}")  # fmt: skip
    r = bench_day(opener, args.day_events)
    results["daily"] = r
    label = f"{r['hourly_rows']:,} hourly"
    print(f"{'rollup-daily (1 day)':<28}{label:>16}{r['rows']:>10}"
          f"{r['best_s']:>10.3f}{r['median_s']:>10.3f}")  # fmt: skip
    return results


if __name__ == "__main__":
    sys.exit(main())
