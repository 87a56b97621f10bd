"""PostgreSQL ingest benchmark (``ingest.py --database-url URL``): batch-1000 ingest over HTTP
through 1, then 2, then 3 ``voxmon serve`` replicas sharing one database, against one process
inserting the same rows into the same schema with COPY and with executemany. One run, one
machine; the figure is events/s and its ratio to each raw rate.

Each figure gets a fresh database on the server (``benchmarks/databases.py``). Replicas are
real subprocesses on their own ports with their own ``--instance-id``; N concurrent client
connections (aiohttp) take the next batch as soon as their previous answer arrives and send
it to the next replica in round-robin order.
After a short untimed warm-up spread over every replica, the timed batches are posted; every
answer must accept all 1,000 events, and after the replicas stop the database must hold
exactly the events acknowledged. The raw figures insert the very same rows (validated as the
daemon validates them, encoded by voxmon's own row layout, outside the timing) into
voxmon's own tables (``events`` and its global dedup key ``event_ids``, created by voxmon's
migrations, day partitions created beforehand), one transaction per batch of 1,000, from one
connection: ``COPY ... FROM STDIN`` into both tables, or ``executemany`` of INSERTs (psycopg
pipelines them). CPU is read from ``/proc`` for the client, the replicas and the server
processes serving the benchmark's database (when the server runs on this machine).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from functools import partial
from itertools import cycle
from pathlib import Path

import aiohttp
import psycopg

from benchmarks.databases import (
    LockWaits,
    Server,
    backend_cpu_seconds,
    backend_pids,
    cpu_delta,
)
from benchmarks.ingest import (
    COMMIT_SERIES,
    BenchError,
    Daemon,
    check_answer,
    commit_totals,
    encode_batches,
    machine,
    make_events,
    percentile,
    validated,
)
from exporter.model import Event
from exporter.storage.postgres.connection import Connection, connect

# The daemon's own column list, INSERT and row encoding: the raw rows are what voxmon stores.
from exporter.storage.postgres.events import _INSERT
from exporter.storage.postgres.partitions import Partitions
from exporter.storage.rows import EVENT_COLUMNS, event_row

BATCH = 1000
REPLICAS = (1, 2, 3)
FULL_EVENTS, FULL_CLIENTS = 200_000, 6
QUICK_EVENTS, QUICK_CLIENTS = 6_000, 3
REQUEST_TIMEOUT_S = 120.0
_JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    events: int
    events_per_s: float
    client_cpu_pct: float  # of one core, over the timed phase
    postgres_cpu_pct: float | None  # the server processes of this figure's database
    voxmon_cpu_pct: float | None = None  # all replicas together
    p50_ms: float | None = None
    p99_ms: float | None = None
    commits: int | None = None  # group commits, all replicas
    events_per_commit: float | None = None
    commit_ms: float | None = None  # mean duration of one group commit
    wait_ms: float | None = None  # mean wait of one group commit for requests on their way
    lock_waiters: float | None = None  # mean connections waiting for a lock (write lock)


# --- voxmon replicas -----------------------------------------------------------------------


async def post_spread(urls: list[str], bodies: list[bytes], clients: int) -> list[float]:
    """Post every body once from ``clients`` concurrent connections, body i to replica
    ``i mod len(urls)``; checks each answer; returns latencies in seconds."""
    pending: Iterator[tuple[str, bytes]] = zip(cycle(urls), bodies)
    latencies: list[float] = []

    async def client(session: aiohttp.ClientSession) -> None:
        for url, body in pending:
            started = time.perf_counter()
            async with session.post(url, data=body, headers=_JSON) as response:
                payload = await response.read()
            latencies.append(time.perf_counter() - started)
            check_answer(response.status, payload, BATCH)

    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return latencies


async def replica_load(
    daemons: list[Daemon], db_url: str, warmup: list[bytes], timed: list[bytes], clients: int
) -> Figure:
    """Untimed warm-up, then the timed posts, with CPU and the replicas' commit metrics read
    on either side."""
    urls = [f"{d.url}/v1/events" for d in daemons]
    await post_spread(urls, warmup, clients)
    before = [await commit_totals(d.url) for d in daemons]
    pids = backend_pids(db_url)
    pg_cpu, cpu = backend_cpu_seconds(pids), time.process_time()
    voxmon_cpu = sum(d.cpu_seconds() for d in daemons)
    started = time.perf_counter()
    with LockWaits(db_url) as waits:
        latencies = await post_spread(urls, timed, clients)
    elapsed = time.perf_counter() - started
    cpu, voxmon_cpu = time.process_time() - cpu, sum(d.cpu_seconds() for d in daemons) - voxmon_cpu
    pg = cpu_delta(pg_cpu, backend_cpu_seconds(pids)) if pids and pg_cpu else None
    after = [await commit_totals(d.url) for d in daemons]
    total, count, seconds, waited = (
        sum(a[n] - b[n] for a, b in zip(after, before, strict=True)) for n in COMMIT_SERIES
    )
    return Figure(
        name=replica_name(len(daemons)),
        events=len(timed) * BATCH,
        events_per_s=len(timed) * BATCH / elapsed,
        client_cpu_pct=100 * cpu / elapsed,
        postgres_cpu_pct=None if pg is None else 100 * pg / elapsed,
        voxmon_cpu_pct=100 * voxmon_cpu / elapsed,
        p50_ms=1000 * percentile(latencies, 0.50),
        p99_ms=1000 * percentile(latencies, 0.99),
        commits=int(count),
        events_per_commit=total / max(count, 1),
        commit_ms=1000 * seconds / max(count, 1),
        wait_ms=1000 * waited / max(count, 1),
        lock_waiters=waits.mean,
    )


def replica_name(replicas: int) -> str:
    return f"voxmon, {replicas} replica{'s' if replicas > 1 else ''}"


def replica_figure(
    server: Server, workdir: Path, replicas: int, warmup: list[bytes], timed: list[bytes],
    clients: int,
) -> Figure:  # fmt: skip
    """``replicas`` fresh ``voxmon serve`` processes on one fresh database."""
    with server.database(f"r{replicas}") as db_url:
        with ExitStack() as stack:
            daemons = [
                stack.enter_context(replica(workdir, db_url, f"r{replicas}-{i}"))
                for i in range(1, replicas + 1)
            ]
            figure = asyncio.run(replica_load(daemons, db_url, warmup, timed, clients))
        verify_stored(db_url, (len(warmup) + len(timed)) * BATCH)
    return figure


def replica(workdir: Path, db_url: str, name: str) -> Daemon:
    """One replica: its own port, log file and instance id (``--instance-id``)."""
    return Daemon(workdir, db_url, name=name, args=("--instance-id", f"bench-{name}"))


def verify_stored(db_url: str, expected: int) -> None:
    """Every acknowledged event is stored, once."""
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone()
    if row is None or tuple(row) != (expected, expected):
        raise BenchError(f"replicas acknowledged {expected} events; stored (rows, ids) {row}")


# --- raw PostgreSQL ------------------------------------------------------------------------

Rows = Sequence[tuple[object, ...]]


def copy_rows(events: Sequence[Event], received_ms: int) -> tuple[Rows, Rows]:
    """The events' rows in voxmon's layout and their dedup keys, as the raw figures insert
    them (built before their timing)."""
    return (
        [event_row(event, received_ms) for event in events],
        [(event.event_id, event.ts_ms) for event in events],
    )


def insert_copy(conn: Connection, rows: Rows, ids: Rows) -> None:
    with conn.cursor() as cursor:
        with cursor.copy(f"COPY events ({EVENT_COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        with cursor.copy("COPY event_ids (event_id, ts_ms) FROM STDIN") as copy:
            for row in ids:
                copy.write_row(row)


def insert_many(conn: Connection, rows: Rows, ids: Rows) -> None:
    with conn.cursor() as cursor:
        cursor.executemany(_INSERT, rows)
        cursor.executemany("INSERT INTO event_ids (event_id, ts_ms) VALUES (%s, %s)", ids)


RAW: dict[str, Callable[[Connection, Rows, Rows], None]] = {
    "raw COPY": insert_copy,
    "raw executemany": insert_many,
}


def raw_figure(server: Server, name: str, batches: list[list[Event]]) -> Figure:
    """One connection inserting every batch in its own transaction into a fresh database
    with voxmon's schema."""
    insert = RAW[name]
    with server.database(name.split()[-1].lower()) as db_url:
        conn = connect(db_url)  # voxmon's own migrations
        try:
            Partitions(conn).ensure({event.ts_ms for batch in batches for event in batch})
            received_ms = time.time_ns() // 1_000_000
            encoded = [copy_rows(batch, received_ms) for batch in batches]
            pid = [conn.info.backend_pid]
            pg_cpu, cpu = backend_cpu_seconds(pid), time.process_time()
            started = time.perf_counter()
            for batch_rows, batch_ids in encoded:
                with conn.transaction():
                    insert(conn, batch_rows, batch_ids)
            elapsed = time.perf_counter() - started
            cpu, pg = time.process_time() - cpu, cpu_delta(pg_cpu, backend_cpu_seconds(pid))
        finally:
            conn.close()
        events = sum(map(len, batches))
        verify_stored(db_url, events)
    return Figure(name, events, events / elapsed, 100 * cpu / elapsed,
                  100 * pg / elapsed if pg_cpu else None)  # fmt: skip


# --- the run -------------------------------------------------------------------------------


def run_postgres(url: str, *, quick: bool, rounds: int | None, as_json: bool) -> int:
    """Every figure, ``rounds`` times interleaved; prints each figure's best round (and
    JSON of every round); 1 on errors, else 0."""
    events, clients = (QUICK_EVENTS, QUICK_CLIENTS) if quick else (FULL_EVENTS, FULL_CLIENTS)
    rounds = rounds or (1 if quick else 3)
    load = [os.getloadavg()[0]]
    runs: dict[str, list[Figure]] = {}
    try:
        server = Server(url)
        bodies = encode_batches(make_events(events + BATCH * clients, "ingest-pg"), BATCH)
        warmup, timed = bodies[:clients], bodies[clients:]
        batches = validated(timed)
        with tempfile.TemporaryDirectory(prefix="voxmon-bench-") as tmp:
            for number in range(1, rounds + 1):
                for name, measure in plan(server, Path(tmp), warmup, timed, batches, clients):
                    print(
                        f"round {number}/{rounds}, {name}: {events:,} events ...", file=sys.stderr
                    )
                    runs.setdefault(name, []).append(measure())
    except (BenchError, aiohttp.ClientError, TimeoutError, psycopg.Error, ValueError) as exc:
        print(f"ingest benchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    load.append(os.getloadavg()[0])
    print_report(server, clients, runs, load)
    if as_json:
        report = {"machine": machine(), "postgresql": server.version, "clients": clients}
        rates = {name: [asdict(f) for f in figures] for name, figures in runs.items()}
        print(json.dumps({**report, "load_average": load, "rounds": rates}))
    return 0


def plan(
    server: Server, workdir: Path, warmup: list[bytes], timed: list[bytes],
    batches: list[list[Event]], clients: int,
) -> list[tuple[str, Callable[[], Figure]]]:  # fmt: skip
    """One round: each figure's name and how to measure it."""
    replicas = [
        (replica_name(n), partial(replica_figure, server, workdir, n, warmup, timed, clients))
        for n in REPLICAS
    ]
    raw = [(name, partial(raw_figure, server, name, batches)) for name in RAW]
    return [*replicas, *raw]


def print_report(
    server: Server, clients: int, runs: dict[str, list[Figure]], load: list[float]
) -> None:
    info = machine()
    cores = len(os.sched_getaffinity(0))
    rounds = len(next(iter(runs.values())))
    print(f"machine: {info['nproc']} CPUs (nproc), {info['platform']}, Python {info['python']},"
          f" PostgreSQL {server.version} (synchronous_commit={server.synchronous_commit}),"
          f" aiohttp {info['aiohttp']}")  # fmt: skip
    print(f"voxmon: batches of {BATCH} from {clients} concurrent connections, round-robin over"
          " the replicas; 200 only after COMMIT; one fresh database per figure")  # fmt: skip
    print(f"raw: one connection, the same rows into voxmon's schema (events + event_ids),"
          f" one transaction per {BATCH} rows")  # fmt: skip
    print(f"client, replicas and PostgreSQL share the {cores} CPUs (CPU % = of one core);"
          f" load average {load[0]:.1f} at start, {load[-1]:.1f} at end")  # fmt: skip
    print(f"each figure's best of {rounds} interleaved round(s): other load on the machine"
          " slows a round, never speeds it")  # fmt: skip
    print("lock wait: mean connections waiting for a lock (replicas' commits queue on voxmon's"
          " write lock)\n")  # fmt: skip
    best = [max(figures, key=lambda f: f.events_per_s) for figures in runs.values()]
    print_tables(best)
    if rounds > 1:
        print(
            f"\n{'events/s per round':<20} " + " / ".join(f"round {i + 1}" for i in range(rounds))
        )
        for name, figures in runs.items():
            print(f"{name:<20} " + " / ".join(f"{f.events_per_s:,.0f}" for f in figures))


def print_tables(figures: list[Figure]) -> None:
    copy, many = (next(f.events_per_s for f in figures if f.name == name) for name in RAW)
    print(f"{'figure':<20} {'events/s':>9} {'/ COPY':>7} {'/ executemany':>13}"
          f" {'p50 ms':>7} {'p99 ms':>7}")  # fmt: skip
    for f in figures:
        rate = f.events_per_s
        print(f"{f.name:<20} {rate:>9,.0f} {rate / copy:>7.2f} {rate / many:>13.2f}"
              f" {_num(f.p50_ms, 7, 1)} {_num(f.p99_ms, 7, 1)}")  # fmt: skip
    print(f"\n{'figure':<20} {'commits':>7} {'ev/commit':>9} {'commit ms':>9} {'wait ms':>7}"
          f" {'lock wait':>9}"
          f" {'voxmon CPU':>10} {'PostgreSQL CPU':>14} {'client CPU':>10}")  # fmt: skip
    for f in figures:
        print(f"{f.name:<20} {_num(f.commits, 7, 0)} {_num(f.events_per_commit, 9, 1)}"
              f" {_num(f.commit_ms, 9, 2)} {_num(f.wait_ms, 7, 2)} {_num(f.lock_waiters, 9, 2)}"
              f" {_pct(f.voxmon_cpu_pct, 10)} {_pct(f.postgres_cpu_pct, 14)}"
              f" {_pct(f.client_cpu_pct, 10)}")  # fmt: skip


def _num(value: float | None, width: int, digits: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width},.{digits}f}"


def _pct(value: float | None, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width - 1}.0f}%"
