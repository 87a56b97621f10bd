"""Rollup benchmark: the hourly job over 100k and 1M events in one hour across 200 orgs,
and the daily job merging 24 x 200 hourly rows. Prints a table of figures.

Goal (issue 3): a 1M-event hour in under 3 s, a day in under 100 ms on a 2-core machine.
Run: ``.venv/bin/python benchmarks/rollup.py [--sizes 100000,1000000] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter.catalog import EVENT_TYPES  # noqa: E402
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
    out = []
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
    out.sort(key=lambda row: row[2])  # type: ignore[arg-type, return-value]
    return out


def bench_hour(directory: Path, count: int) -> dict[str, float]:
    conn = connect(directory / f"hour-{count}.db", synchronous="OFF")
    in_transaction(conn, lambda c: c.executemany(INSERT, rows(count, datetime_to_ms(HOUR))))
    in_transaction(conn, lambda c: SqliteStore(c).horizons.extend_history(datetime_to_ms(HOUR)))
    store = SqliteStore(conn)
    write = jobs.direct_write(store)
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        written = jobs.rollup_hour(store, write, HOUR, NOW)
        timings.append(time.perf_counter() - started)
    conn.close()
    return {
        "events": count,
        "rows": written,
        "best_s": min(timings),
        "median_s": sorted(timings)[1],
    }


def bench_day(directory: Path, events: int = 200_000) -> dict[str, float]:
    """24 hourly rows for each of 200 orgs (+ platform), copied from one real busy hour."""
    conn = connect(directory / "day.db", synchronous="OFF")
    data = rows(events, datetime_to_ms(HOUR), seed=2)
    in_transaction(conn, lambda c: c.executemany(INSERT, data))
    store = SqliteStore(conn)
    in_transaction(conn, lambda c: store.horizons.extend_history(datetime_to_ms(HOUR) - 36_000_000))
    write = jobs.direct_write(store)
    jobs.rollup_hour(store, write, HOUR, NOW)
    shift = "UPDATE snapshots SET period_start_ms = period_start_ms + ? WHERE period = 'hourly'"
    copy = (
        "INSERT INTO snapshots (period, period_start_ms, scope, artifacts_received,"
        " artifacts_completed, artifacts_failed, ai_cost_usd, end_to_end, parts)"
        " SELECT period, period_start_ms + ?, scope, artifacts_received, artifacts_completed,"
        " artifacts_failed, ai_cost_usd, end_to_end, parts FROM snapshots"
        " WHERE period = 'hourly' AND period_start_ms = ?"
    )
    base = datetime_to_ms(HOUR)
    day = HOUR.replace(hour=0)

    def spread(c: object) -> None:
        c.execute(shift, (-10 * 3_600_000,))  # type: ignore[attr-defined]
        for h in range(1, 24):
            c.execute(copy, (h * 3_600_000, base - 10 * 3_600_000))  # type: ignore[attr-defined]

    in_transaction(conn, spread)
    hourly = conn.execute("SELECT COUNT(*) FROM snapshots WHERE period = 'hourly'").fetchone()[0]
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        written = jobs.rollup_day(store, write, day, NOW)
        timings.append(time.perf_counter() - started)
    conn.close()
    return {"hourly_rows": hourly, "rows": written, "best_s": min(timings),
            "median_s": sorted(timings)[2]}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--day-events", type=int, default=200_000,
                        help="events in the hour copied 24 times for the daily job")  # fmt: skip
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cpus, Python {platform.python_version()}")
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="voxmon-bench-") as tmp:
        print(f"{'job':<28}{'input':>16}{'rows out':>10}{'best s':>10}{'median s':>10}")
        for size in (int(s) for s in args.sizes.split(",")):
            r = bench_hour(Path(tmp), size)
            results[f"hourly_{size}"] = r
            label = f"{size:,} events"
            print(f"{'rollup-hourly (1 hour)':<28}{label:>16}{r['rows']:>10}"
                  f"{r['best_s']:>10.3f}{r['median_s']:>10.3f}")  # fmt: skip
        r = bench_day(Path(tmp), args.day_events)
        results["daily"] = r
        label = f"{r['hourly_rows']:,} hourly"
        print(f"{'rollup-daily (1 day)':<28}{label:>16}{r['rows']:>10}"
              f"{r['best_s']:>10.3f}{r['median_s']:>10.3f}")  # fmt: skip
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
