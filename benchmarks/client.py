"""Client benchmark: what ``emit()`` costs the calling pipeline code (per-call latency with
the server down, and while the sender is busy delivering), and end-to-end throughput
client -> voxmon (every event acknowledged after its durable commit, then counted in the file).

Goal (issue 6): ``emit()`` p50 <= 10 µs. Timings are printed, never asserted.
Run: ``.venv/bin/python benchmarks/client.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voxmon_client import AsyncEmitter, ClientStats, Emitter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.ingest import BenchError, Daemon, free_port, percentile  # noqa: E402

Call = tuple[str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Overhead:
    case: str
    calls: int
    p50_us: float
    p99_us: float
    p999_us: float
    max_us: float
    mean_us: float
    dropped: int


@dataclass(frozen=True, slots=True)
class Throughput:
    emitter: str
    batch: int
    events: int
    events_per_s: float
    emit_p50_us: float
    emit_p99_us: float
    retries: int


def calls(count: int, seed: int = 1) -> list[Call]:
    """Realistic ``emit`` arguments (built before timing: the caller's own cost)."""
    rng = random.Random(seed)
    out: list[Call] = []
    for i in range(count):
        fields: dict[str, Any] = {"artifact_id": f"note-{i // 10:08d}",
                                  "org_id": f"org-{rng.randrange(20):02d}"}  # fmt: skip
        if i % 2:
            fields["duration_ms"] = round(rng.lognormvariate(8, 0.5), 1)
            fields["metadata"] = {"confidence": 0.93, "ai_model": "gpt-4o-mini",
                                  "ai_cost_usd": 0.0012}  # fmt: skip
            out.append(("claims_extracted", fields))
        else:
            out.append(("claims_extraction_started", fields))
    return out


def timed_emits(emit: Callable[..., str], work: list[Call]) -> list[float]:
    """Each call's wall time in µs (perf_counter_ns around the call alone)."""
    clock = time.perf_counter_ns
    spent = []
    for event_type, fields in work:
        started = clock()
        emit(event_type, **fields)
        spent.append((clock() - started) / 1000)
    return spent


def overhead(case: str, capacity: int, count: int) -> Overhead:
    """Server down: nothing listens on the port, the sender is retrying in the background."""
    emitter = Emitter(f"http://127.0.0.1:{free_port()}", capacity=capacity, exit_timeout_s=0)
    try:
        timed_emits(emitter.emit, calls(2000, seed=0))  # warm-up
        spent = sorted(timed_emits(emitter.emit, calls(count)))
    finally:
        stats = emitter.close(0)
    return Overhead(
        case, count, percentile(spent, 0.5), percentile(spent, 0.99), percentile(spent, 0.999),
        spent[-1], sum(spent) / len(spent), stats.dropped,
    )  # fmt: skip


def sync_throughput(url: str, batch: int, count: int) -> tuple[float, list[float], int]:
    emitter = Emitter(url, capacity=count, batch_size=batch)
    work = calls(count)
    started = time.perf_counter()
    spent = timed_emits(emitter.emit, work)
    if not emitter.flush(300):
        raise BenchError(f"flush timed out: {emitter.stats()}")
    elapsed = time.perf_counter() - started
    stats = emitter.close(5)
    check(stats, count)
    return count / elapsed, spent, stats.retries


async def async_throughput(url: str, batch: int, count: int) -> tuple[float, list[float], int]:
    work = calls(count)
    async with AsyncEmitter(url, capacity=count, batch_size=batch) as emitter:
        started = time.perf_counter()
        spent: list[float] = []
        for i in range(0, count, 1000):  # a busy loop still yields to the sender
            spent += timed_emits(emitter.emit, work[i : i + 1000])
            await asyncio.sleep(0)
        if not await emitter.flush(300):
            raise BenchError(f"flush timed out: {emitter.stats()}")
        elapsed = time.perf_counter() - started
    stats = emitter.stats()
    check(stats, count)
    return count / elapsed, spent, stats.retries


def check(stats: ClientStats, count: int) -> None:
    if stats.accepted != count or stats.dropped or stats.failed:
        raise BenchError(f"expected {count} accepted, none dropped or failed: {stats}")


def throughput(workdir: Path, name: str, batch: int, count: int) -> Throughput:
    db = workdir / f"{name}-{batch}.db"
    with Daemon(workdir, db) as daemon:
        if name == "Emitter":
            rate, spent, retries = sync_throughput(daemon.url, batch, count)
        else:
            rate, spent, retries = asyncio.run(async_throughput(daemon.url, batch, count))
    with sqlite3.connect(db) as conn:
        (stored,) = conn.execute("SELECT COUNT(*) FROM events").fetchone()
    if stored != count:
        raise BenchError(f"{count} events acknowledged, {stored} stored")
    spent.sort()
    return Throughput(name, batch, count, rate, percentile(spent, 0.5), percentile(spent, 0.99),
                      retries)  # fmt: skip


def report(overheads: list[Overhead], runs: list[Throughput]) -> None:
    print(f"machine: {len(os.sched_getaffinity(0))} CPUs,"
          f" {platform.platform()}, Python {platform.python_version()}\n")  # fmt: skip
    print("emit() overhead, server down (sender retrying in the background)")
    print(f"{'case':<34} {'calls':>8} {'p50 µs':>7} {'p99 µs':>7} {'p99.9 µs':>8}"
          f" {'max µs':>8} {'mean µs':>7} {'dropped':>8}")  # fmt: skip
    for o in overheads:
        print(f"{o.case:<34} {o.calls:>8,} {o.p50_us:>7.2f} {o.p99_us:>7.2f} {o.p999_us:>8.2f}"
              f" {o.max_us:>8.0f} {o.mean_us:>7.2f} {o.dropped:>8,}")  # fmt: skip
    print("\nend to end: emit as fast as possible, then flush; events/s = events /"
          " (first emit -> all acknowledged)")  # fmt: skip
    print("daemon defaults (synchronous=FULL, WAL), sharing the CPUs with the client")
    print(f"{'emitter':<13} {'batch':>6} {'events':>8} {'events/s':>9} {'emit p50 µs':>11}"
          f" {'emit p99 µs':>11} {'retries':>7}")  # fmt: skip
    for r in runs:
        print(f"{r.emitter:<13} {r.batch:>6} {r.events:>8,} {r.events_per_s:>9,.0f}"
              f" {r.emit_p50_us:>11.2f} {r.emit_p99_us:>11.2f} {r.retries:>7}")  # fmt: skip
    best = min(o.p50_us for o in overheads)
    worst = max(o.p50_us for o in overheads)
    print(f"\ngoal (emit p50 <= 10 µs): {'met' if worst <= 10 else 'NOT met'}"
          f" (p50 {best:.2f}..{worst:.2f} µs)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts (smoke test)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)  # down-server cases log retries, abandons
    n = 20_000 if args.quick else 200_000
    overheads = [
        overhead("buffer filling (capacity >= calls)", n + 2000, n),
        overhead("buffer full, drop-oldest (10,000)", 10_000, n),
    ]
    runs = []
    try:
        with tempfile.TemporaryDirectory(prefix="voxmon-client-bench-") as tmp:
            for name, batch in (("Emitter", 500), ("Emitter", 2000), ("AsyncEmitter", 500)):
                print(f"{name} batch {batch}: {n:,} events ...", file=sys.stderr)
                runs.append(throughput(Path(tmp), name, batch, n))
    except BenchError as exc:
        print(f"client benchmark failed: {exc}", file=sys.stderr)
        return 1
    report(overheads, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
