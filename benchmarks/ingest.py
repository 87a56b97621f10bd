"""Ingest benchmark: events/s over HTTP with durability (200 only after the SQLite commit,
daemon defaults: synchronous=FULL, WAL) for batches of 1, 100 and 1000 from concurrent
clients, against the raw SQLite insert rate of the same rows in the same run. The ratio
(HTTP / raw) is the figure.

Goals (issue 15): for batches of 1000, HTTP >= 0.8 x the raw rate and >= 28,000 events/s
on a 2-core machine; for 16 concurrent single-event clients, >= 0.8 x the raw rate. The
load generator and the daemon share the machine's cores. The HTTP floor comes next: the
same posts from the same clients answered by aiohttp alone (``benchmarks/bare_server.py``:
each body read and split into items, nothing validated or stored), the rate any daemon on
aiohttp reaches here before doing anything with the events. Then an experiment: the same
posts to voxmon's own validation and commit split over two processes
(``benchmarks/split_server.py``; docs/decisions/ingest-process-split.md), which stores every
event it acknowledges like the daemon (checked). A fourth table explains the
figure from the daemon's own metrics: group commits, events per commit, mean commit time,
the share of the run the writer spent committing and waiting for requests on their way
(`commit_delay_ms`), and each process's CPU; the last splits a group commit's cycle into
committing, waiting and idle (nothing queued: the clients answered, the event loop
reading their next posts, and the hops between the loop and the database thread).
The script reports the goal, it never fails on it: the exit status is non-zero only on
errors (a non-200 answer, a wrong count, a daemon that will not start or lost rows).

Events are realistic: notes of 50 orgs through the pipeline (3 % of stage runs hit an error,
half retried, half failed; durations; AI cost and confidence metadata), UUID event and
artifact ids, RFC 3339 times from the last hour. Random UUID keys make every insert land on
a random index page, so rates fall as the file grows; counts are fixed so runs compare.

The clients of the SQLite scenarios are lean (one pre-built HTTP/1.1 request written per
post over keep-alive connections, each answer read by its length), so that the load
generator, which shares the daemon's cores, takes as little of them as it can; the
PostgreSQL replicas' figures (``benchmarks/replicas.py``) still post with aiohttp's client.

Each batch size gets a fresh daemon (``python -m exporter serve`` on 127.0.0.1, a free port,
an empty database in a temporary directory, no config file, no ``VOXMON_*`` variables), a
short untimed warm-up, then a fixed number of events posted as pre-encoded JSON arrays. The
daemon is stopped, its rows are counted, and the very same items (validated as the daemon
validates them, outside the timing) are inserted into a fresh file opened with
``exporter.storage.sqlite.connection.connect`` (same schema and pragmas) by
``SqliteEvents.insert`` (the statement the daemon's commit runs, ``INSERT ... ON CONFLICT
(event_id) DO NOTHING``), one transaction per batch. Single events take three such paired
rounds, each on fresh files, and the round with the median ratio is reported: a transaction
per event is bound by the disk's flush, whose rate moves by a third within minutes here.
The split experiment runs in each round too, right after the raw inserts, and its own
median round is reported beside voxmon's.

``--database-url postgresql://user@host:port/db`` measures PostgreSQL instead: batch-1000
ingest through 1, 2 and 3 replicas on one database against raw COPY and executemany of the
same rows, as ratios from one run (``benchmarks/replicas.py``).

Run: ``.venv/bin/python benchmarks/ingest.py [--quick] [--json] [--database-url URL [--rounds N]]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import msgspec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter.model import Event  # noqa: E402
from exporter.storage.sqlite.connection import connect, transaction  # noqa: E402
from exporter.storage.sqlite.events import SqliteEvents  # noqa: E402
from exporter.validation import Horizon, validate_items  # noqa: E402


@dataclass(frozen=True, slots=True)
class Scenario:
    batch: int
    clients: int
    events: int  # a multiple of batch
    rounds: int = 1  # paired rounds (``paired_round``): voxmon, raw, the split (odd)


FULL = (Scenario(1, 16, 20_000, 3), Scenario(100, 8, 200_000), Scenario(1000, 4, 200_000))
QUICK = (Scenario(1, 4, 400, 3), Scenario(100, 4, 4_000), Scenario(1000, 2, 8_000))
"""Single events take three paired rounds: a transaction per event is bound by the disk's
flush, whose rate here swung from 1,742 to 2,548 a second between runs minutes apart, so one
voxmon run against one raw run a minute later gave 0.69 to 1.01 (docs/benchmarks.md)."""
GOALS = {1000: (0.8, 28_000), 1: (0.8, 0)}
"""batch -> (least HTTP / raw ratio, least HTTP events/s)."""
ORGS = 50
MIN_CPU_S = 0.5
"""A server's CPU seconds below which its CPU per event is not printed (10 ms ticks)."""
READY_TIMEOUT_S = 30.0
REQUEST_TIMEOUT_S = 120.0


T = TypeVar("T")


class BenchError(Exception):
    """The run cannot produce a valid figure (not a missed goal)."""


@dataclass(frozen=True, slots=True)
class Result:
    batch: int
    clients: int
    events: int
    http_events_per_s: float
    raw_rows_per_s: float
    ratio: float
    p50_ms: float
    p99_ms: float
    client_cpu_pct: float  # of one core, over the timed HTTP phase
    daemon_cpu_pct: float
    commits: int  # group commits during the timed phase (daemon's own metrics)
    events_per_commit: float
    commit_ms: float  # mean duration of one group commit
    writer_busy_pct: float  # share of the timed phase the writer spent committing
    writer_wait_pct: float  # share it spent waiting for requests on their way (commit delay)
    bare_events_per_s: float  # the same posts answered by aiohttp alone (bare_server.py)
    bare_cpu_pct: float  # its CPU, of one core
    split_events_per_s: float  # voxmon's parse and commit in two processes (split_server.py)
    split_cpu_pct: float  # its two processes' CPU, of one core
    round_ratios: list[float]  # each paired round's HTTP / raw, in run order; ratio: median
    split_ratio: float  # the split / its own round's raw: the median round (split_rounds)
    split_rounds: list[float]  # each round's split / raw, in run order
    split_per_voxmon: float  # the median over rounds of the split / that round's voxmon


# --- events --------------------------------------------------------------------------------

# (stage, started, succeeded, failed, median seconds); text notes skip transcription.
STAGES = (
    ("transcription", "transcription_started", "transcription_completed",
     "transcription_failed", 8.0),
    ("claims_extraction", "claims_extraction_started", "claims_extracted",
     "claims_extraction_failed", 4.0),
    ("entity_resolution", "entity_resolution_started", "entity_resolution_completed",
     "entity_resolution_failed", 1.5),
    ("draft_generation", "draft_generation_started", "drafts_generated",
     "draft_generation_failed", 6.0),
)  # fmt: skip


def rfc3339(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def stage_metadata(rng: random.Random, stage: str) -> dict[str, Any]:
    """What each stage reports: AI cost and confidence where a model ran, counts."""
    if stage == "transcription":
        words = rng.randint(40, 900)
        return {
            "transcript_word_count": words,
            "transcript_duration_s": round(words / 2.5, 1),
            "confidence": round(rng.uniform(0.7, 0.99), 3),
            "ai_cost_usd": round(words * 0.00002, 6),
            "ai_model": "whisper-large-v3",
        }
    if stage == "claims_extraction":
        return {
            "claim_count": rng.randint(0, 12),
            "confidence": round(rng.uniform(0.5, 0.98), 3),
            "ai_cost_usd": round(rng.uniform(0.001, 0.01), 6),
            "ai_model": "gpt-4o-mini",
        }
    if stage == "entity_resolution":
        entities = rng.randint(0, 8)
        unresolved = rng.randint(0, min(2, entities))
        return {"entity_count": entities, "auto_resolved_count": entities - unresolved,
                "disambiguation_count": unresolved}  # fmt: skip
    return {"draft_count": rng.randint(1, 3), "ai_cost_usd": round(rng.uniform(0.005, 0.03), 6),
            "ai_model": "gpt-4o"}  # fmt: skip


def artifact_events(rng: random.Random, start_ms: int) -> list[dict[str, Any]]:
    """One note through the pipeline: received, each stage started -> succeeded (3 % fail,
    half of those retried), a coach decision, then completed (end-to-end duration derived
    by the daemon from ``artifact_received``) or failed."""
    org = rng.randrange(ORGS)
    base = {"artifact_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "org_id": f"org-{org:02d}", "voice_note_id": f"vn-{rng.getrandbits(40):010x}",
            "coach_user_id": f"coach-{org:02d}-{rng.randrange(20)}"}  # fmt: skip
    channel = "audio" if rng.random() < 0.7 else "text"
    out: list[dict[str, Any]] = []
    t = start_ms

    def emit(event_type: str, **fields: Any) -> None:
        out.append({"event_type": event_type, "timestamp": rfc3339(t), **base, **fields})

    emit("artifact_received", metadata={"source_channel": channel})
    for stage, started, succeeded, failed, median_s in STAGES:
        if stage == "transcription" and channel == "text":
            continue
        t += rng.randint(50, 1500)
        emit(started)
        duration = min(round(rng.lognormvariate(math.log(median_s * 1000), 0.6), 1), 600_000.0)
        t += int(duration)
        if rng.random() < 0.03:
            if rng.random() < 0.5:
                emit("retry_initiated", stage=stage, metadata={"retry_attempt": 1})
                emit("retry_succeeded", stage=stage, metadata={"retry_attempt": 1})
            else:
                emit(failed, duration_ms=duration, error_code="UPSTREAM_TIMEOUT",
                     error_message=f"{stage} model call timed out after 3 attempts")  # fmt: skip
                emit("artifact_failed", error_code="UPSTREAM_TIMEOUT")
                return out
        emit(succeeded, duration_ms=duration, metadata=stage_metadata(rng, stage))
    t += rng.randint(10_000, 300_000)
    emit("draft_confirmed" if rng.random() < 0.8 else "draft_rejected")
    emit("artifact_completed")
    return out


def make_events(count: int, seed: str) -> list[dict[str, Any]]:
    """``count`` pipeline events of notes started 5..50 minutes ago (inside the live window
    and the late-event horizon), interleaved by time as a busy pipeline would send them."""
    rng = random.Random(seed)
    now_ms = time.time_ns() // 1_000_000
    events: list[dict[str, Any]] = []
    while len(events) < count:
        events.extend(artifact_events(rng, now_ms - rng.randint(300_000, 3_000_000)))
    del events[count:]
    events.sort(key=lambda e: e["timestamp"])
    for event in events:
        event["event_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return events


def encode_batches(events: list[dict[str, Any]], batch: int) -> list[bytes]:
    return [msgspec.json.encode(events[i : i + batch]) for i in range(0, len(events), batch)]


# --- the daemon ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Daemon:
    """``voxmon serve`` in a subprocess on loopback with default settings; stopped (SIGTERM,
    which drains the ingest queue) on exit from the ``with`` block, killed if it hangs."""

    def __init__(
        self,
        workdir: Path,
        db: Path | str,
        *,
        name: str = "daemon",
        args: Sequence[str] = (),
        bare: bool = False,
        split: int = 0,
    ) -> None:
        """``db``: the SQLite file, or a ``postgresql://`` URL (``--database-url``); ``args``:
        more ``serve`` flags; ``name``: the log file's (one daemon per name in ``workdir``);
        ``bare``: ``benchmarks/bare_server.py`` instead of voxmon (``db`` unused); ``split``:
        ``benchmarks/split_server.py`` with that many messages in flight (``db``: its file)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._name, self._log_path = name, workdir / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOXMON_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        storage = "--database-url" if str(db).startswith("postgresql://") else "--db"
        if bare:
            command = [sys.executable, str(ROOT / "benchmarks" / "bare_server.py"), str(self.port)]
        elif split:
            command = [sys.executable, str(ROOT / "benchmarks" / "split_server.py"), str(self.port),
                       str(db), "--in-flight", str(split)]  # fmt: skip
        else:
            command = [sys.executable, "-m", "exporter", "serve", storage, str(db), "--host",
                       "127.0.0.1", "--port", str(self.port), "--log-level", "WARNING",
                       *args]  # fmt: skip
        with self._log_path.open("wb") as log:
            # cwd = the temporary directory, so no ./voxmon.toml is picked up
            self._proc = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=log)

    def __enter__(self) -> Daemon:
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        code = self.stop()
        if kind is None and code != 0:
            raise BenchError(f"{self._name} exited with status {code}:\n{self.log_tail()}")

    def _wait_ready(self) -> None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BenchError(f"{self._name} exited at start:\n{self.log_tail()}")
            try:
                with opener.open(f"{self.url}/readyz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        waited = f"{READY_TIMEOUT_S:.0f} s"
        raise BenchError(f"{self._name} not ready after {waited}:\n{self.log_tail()}")

    def stop(self) -> int:
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        return self._proc.returncode

    def cpu_seconds(self) -> float:
        """User + system CPU time so far of the daemon process and its descendants:
        those running, whichever thread started them, and those it has waited for
        (Linux ``/proc``)."""
        return _tree_cpu_seconds(self._proc.pid)

    def log_tail(self, lines: int = 30) -> str:
        text = self._log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:]) or "(no output)"


def _tree_cpu_seconds(pid: int) -> float:
    """A process's user + system CPU seconds with its waited-for children's, plus its
    running children's, recursively; 0 for one gone meanwhile (listed, then reaped). A
    child reaped between the reads of its parent and of its own is missed once: the
    servers measured start no short-lived children."""
    stat = _read(Path(f"/proc/{pid}/stat"))
    if not stat:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # utime stime cutime cstime: fields 14-17
    own = sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    children = [int(child) for task in _listed(Path(f"/proc/{pid}/task"))
                for child in _read(task / "children").split()]  # fmt: skip
    return own + sum(_tree_cpu_seconds(child) for child in children)


def _listed(directory: Path) -> list[Path]:
    try:
        return list(directory.iterdir())
    except OSError:  # gone: FileNotFoundError, or ProcessLookupError once reaped
        return []


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:  # gone: FileNotFoundError, or ProcessLookupError once reaped
        return ""


# --- HTTP load -----------------------------------------------------------------------------


class Answer(msgspec.Struct):
    accepted: int
    duplicates: int
    rejected: list[Any]


_answer = msgspec.json.Decoder(Answer)


async def post_all(url: str, bodies: list[bytes], batch: int, clients: int) -> list[float]:
    """Post every body once from ``clients`` concurrent keep-alive connections (each takes
    the next body when its previous answer arrives); checks each answer; returns latencies
    in seconds. The load generator shares the daemon's cores, so it is kept lean: each
    request is one pre-built HTTP/1.1 write, each answer read by its ``Content-Length``
    (47 to 60 µs of the client's CPU a single-event request where aiohttp's client took 64
    to 81, and the split experiment's rate steadier; docs/benchmarks.md)."""
    pending: Iterator[bytes] = iter(bodies)
    latencies: list[float] = []
    address = urllib.parse.urlsplit(url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    head = (f"POST {address.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Content-Type: application/json\r\nContent-Length: ").encode()  # fmt: skip

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for body in pending:
                started = time.perf_counter()
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    writer.write(b"%s%d\r\n\r\n%s" % (head, len(body), body))
                    status, payload = await read_answer(reader)
                latencies.append(time.perf_counter() - started)
                check_answer(status, payload, batch)
        except asyncio.IncompleteReadError as exc:
            raise BenchError(f"{url}: the server closed the connection before answering"
                             f" ({len(exc.partial)} bytes of an answer read)") from exc  # fmt: skip
        except TimeoutError as exc:  # before OSError, which it is
            raise BenchError(f"{url}: no answer within {REQUEST_TIMEOUT_S:g} s") from exc
        except OSError as exc:
            raise BenchError(f"connection to {url} failed: {exc!r}") from exc
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 answer with a ``Content-Length`` body: its status and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = {k.strip().lower(): v.strip() for k, _, v in (s.partition(":") for s in lines[1:])}
    if "content-length" not in fields:
        raise BenchError(f"answer without Content-Length (not read: chunked, or an interim"
                         f" 1xx): {head[:300]!r}")  # fmt: skip
    return int(lines[0].split()[1]), await reader.readexactly(int(fields["content-length"]))


def check_answer(status: int, payload: bytes, batch: int) -> None:
    if status != 200:
        raise BenchError(f"HTTP {status}: {payload[:500]!r}")
    answer = _answer.decode(payload)
    if answer.accepted != batch or answer.duplicates or answer.rejected:
        raise BenchError(f"expected {batch} accepted, got {payload[:500]!r}")


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (``0 < q <= 1``) of non-empty ``values``, in any order."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# --- raw SQLite ----------------------------------------------------------------------------

_items = msgspec.json.Decoder(list[msgspec.Raw])


def validated(bodies: list[bytes]) -> list[list[Event]]:
    """The bodies' items as the daemon validates them (one list per request)."""
    now_ms = time.time_ns() // 1_000_000
    batches = []
    for body in bodies:
        events, rejections, _ = validate_items(_items.decode(body), now_ms, Horizon())
        if rejections:
            raise BenchError(f"generated events were rejected: {rejections[:3]}")
        batches.append(events)
    return batches


def raw_rate(db: Path, batches: list[list[Event]]) -> float:
    """Rows/s inserting each batch in its own transaction into a fresh file with the
    daemon's schema and pragmas (synchronous=FULL, WAL)."""
    conn = connect(db)
    received_ms = time.time_ns() // 1_000_000
    try:
        started = time.perf_counter()
        for batch in batches:
            with transaction(conn):
                SqliteEvents(conn).insert(batch, received_ms)
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    return sum(map(len, batches)) / elapsed


# --- one scenario --------------------------------------------------------------------------


def run_scenario(workdir: Path, scenario: Scenario) -> Result:
    """The scenario's paired rounds (the median round's figures are reported, and the
    split's own median round), then the same posts to aiohttp alone once."""
    batch, clients = scenario.batch, scenario.clients
    events = make_events(scenario.events + batch * clients, f"ingest-{batch}")
    bodies = encode_batches(events, batch)
    del events
    warmup, timed = bodies[:clients], bodies[clients:]
    batches: list[list[Event]] = []  # validated after the first HTTP run, then kept
    rounds = [
        paired_round(workdir, scenario, warmup, timed, batches, n) for n in range(scenario.rounds)
    ]
    del batches
    ratios = [scenario.events / r.load.elapsed / r.raw for r in rounds]
    chosen = median_round(rounds, ratios)
    load, raw = chosen.load, chosen.raw
    split_ratios = [scenario.events / r.split_elapsed / r.raw for r in rounds]
    split = median_round(rounds, split_ratios)
    per_voxmon = [r.load.elapsed / r.split_elapsed for r in rounds]
    with Daemon(workdir, "", name="bare", bare=True) as bare:
        bare_elapsed, bare_cpu = asyncio.run(bare_load(bare, warmup, timed, batch, clients))
    http = scenario.events / load.elapsed
    commit_sum, commits, commit_s, wait_s = (load.commits[name] for name in COMMIT_SERIES)
    return Result(
        batch=batch,
        clients=clients,
        events=scenario.events,
        http_events_per_s=http,
        raw_rows_per_s=raw,
        ratio=http / raw,
        p50_ms=1000 * percentile(load.latencies, 0.50),
        p99_ms=1000 * percentile(load.latencies, 0.99),
        client_cpu_pct=100 * load.client_cpu / load.elapsed,
        daemon_cpu_pct=100 * load.daemon_cpu / load.elapsed,
        commits=int(commits),
        events_per_commit=commit_sum / max(commits, 1),
        commit_ms=1000 * commit_s / max(commits, 1),
        writer_busy_pct=100 * commit_s / load.elapsed,
        writer_wait_pct=100 * wait_s / load.elapsed,
        bare_events_per_s=scenario.events / bare_elapsed,
        bare_cpu_pct=100 * bare_cpu / bare_elapsed,
        split_events_per_s=scenario.events / split.split_elapsed,
        split_cpu_pct=100 * split.split_cpu / split.split_elapsed,
        round_ratios=ratios,
        split_ratio=scenario.events / split.split_elapsed / split.raw,
        split_rounds=split_ratios,
        split_per_voxmon=median_round(per_voxmon, per_voxmon),
    )


def paired_round(
    workdir: Path,
    scenario: Scenario,
    warmup: list[bytes],
    timed: list[bytes],
    batches: list[list[Event]],
    number: int,
) -> Round:
    """One round: voxmon on a fresh file (every event checked stored), then at once the raw
    rate on another fresh file, so that the two meet the disk in the same minute, then the
    split experiment on a third (checked stored too). ``batches`` is filled with the
    validated events on the first round, after its HTTP run: 200,000 events held during it
    would give the load generator's collector that much more to walk."""
    batch, clients = scenario.batch, scenario.clients
    stored = (len(warmup) + len(timed)) * batch
    db = workdir / f"http-{batch}-{number}.db"
    with Daemon(workdir, db, name=f"daemon-{batch}-{number}") as daemon:
        load = asyncio.run(timed_load(daemon, warmup, timed, batch, clients))
    verify_stored(db, stored)
    if not batches:
        batches.extend(validated(timed))
    raw = raw_rate(workdir / f"raw-{batch}-{number}.db", batches)
    split_db = workdir / f"split-{batch}-{number}.db"
    with Daemon(workdir, split_db, name=f"split-{batch}-{number}", split=1) as split:
        split_elapsed, split_cpu = asyncio.run(bare_load(split, warmup, timed, batch, clients))
    verify_stored(split_db, stored, "split_server.py")
    return Round(load, raw, split_elapsed, split_cpu)


@dataclass(frozen=True, slots=True)
class Round:
    """One paired round: voxmon's load, the raw rate right after it, the split's run."""

    load: Load
    raw: float  # rows/s
    split_elapsed: float  # seconds
    split_cpu: float  # CPU seconds of its two processes


def median_round(rounds: Sequence[T], ratios: Sequence[float]) -> T:
    """The round whose ratio is the median (the lower middle one of an even count)."""
    order = sorted(range(len(rounds)), key=lambda n: ratios[n])
    return rounds[order[(len(order) - 1) // 2]]


@dataclass(frozen=True, slots=True)
class Load:
    elapsed: float
    latencies: list[float]  # seconds
    client_cpu: float
    daemon_cpu: float
    commits: dict[str, float]  # COMMIT_SERIES, increase over the timed phase


async def timed_load(
    daemon: Daemon, warmup: list[bytes], timed: list[bytes], batch: int, clients: int
) -> Load:
    """Untimed warm-up, then the timed posts, with CPU and the daemon's commit metrics read
    on either side."""
    url = f"{daemon.url}/v1/events"
    await post_all(url, warmup, batch, clients)
    before = await commit_totals(daemon.url)
    cpu, daemon_cpu = time.process_time(), daemon.cpu_seconds()
    started = time.perf_counter()
    latencies = await post_all(url, timed, batch, clients)
    elapsed = time.perf_counter() - started
    cpu, daemon_cpu = time.process_time() - cpu, daemon.cpu_seconds() - daemon_cpu
    after = await commit_totals(daemon.url)
    commits = {name: after[name] - before[name] for name in COMMIT_SERIES}
    return Load(elapsed, latencies, cpu, daemon_cpu, commits)


async def bare_load(
    server: Daemon, warmup: list[bytes], timed: list[bytes], batch: int, clients: int
) -> tuple[float, float]:
    """Seconds to post ``timed`` to a server with no ``/metrics`` (``bare_server.py``,
    ``split_server.py``) after the same warm-up, and the server's CPU seconds meanwhile."""
    url = f"{server.url}/v1/events"
    await post_all(url, warmup, batch, clients)
    cpu, started = server.cpu_seconds(), time.perf_counter()
    await post_all(url, timed, batch, clients)
    return time.perf_counter() - started, server.cpu_seconds() - cpu


COMMIT_SERIES = (
    "voxmon_commit_batch_events_sum",
    "voxmon_commit_batch_events_count",
    "voxmon_commit_duration_seconds_sum",
    "voxmon_commit_wait_seconds_total",
)


async def commit_totals(base: str) -> dict[str, float]:
    """The daemon's own group-commit histogram sums and count, from ``/metrics``."""
    async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as response:
        text = await response.text()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            sample, value = line.rsplit(" ", 1)
            name = sample.split("{", 1)[0]  # labelled samples of one family add up
            if name in COMMIT_SERIES:
                totals[name] = totals.get(name, 0.0) + float(value)
    missing = [name for name in COMMIT_SERIES if name not in totals]
    if missing:
        raise BenchError(f"/metrics has no {missing[0]!r}")
    return totals


def verify_stored(db: Path, expected: int, server: str = "daemon") -> None:
    """Every acknowledged event is in the file, which is in WAL mode."""
    conn = sqlite3.connect(db)
    try:
        stored = SqliteEvents(conn).count()
        (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
    finally:
        conn.close()
    if stored != expected:
        raise BenchError(f"{server} acknowledged {expected} events but stored {stored}")
    if mode != "wal":
        raise BenchError(f"{server} database journal_mode is {mode}, expected wal")


# --- report --------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "aiohttp": aiohttp.__version__,
        "msgspec": msgspec.__version__,
    }


def print_report(info: dict[str, Any], results: list[Result]) -> None:
    print(f"machine: {info['nproc']} CPUs (nproc), {info['platform']}, Python {info['python']},"
          f" SQLite {info['sqlite']}, aiohttp {info['aiohttp']}")  # fmt: skip
    print("durability: 200 only after COMMIT (daemon defaults: synchronous=FULL, WAL)")
    print("raw SQLite: the same rows, same schema and pragmas, one transaction per batch")
    start, end = info["load_average"]
    print(f"load generator and daemon share the {info['nproc']} CPUs (CPU % = of one core);"
          f" load average {start:.1f} at start, {end:.1f} at end\n")  # fmt: skip
    print(f"{'batch':>6} {'clients':>7} {'events':>8} {'HTTP ev/s':>10} {'raw rows/s':>10}"
          f" {'ratio':>6} {'p50 ms':>8} {'p99 ms':>8}")  # fmt: skip
    for r in results:
        print(
            f"{r.batch:>6} {r.clients:>7} {r.events:>8} {r.http_events_per_s:>10,.0f}"
            f" {r.raw_rows_per_s:>10,.0f} {r.ratio:>6.2f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f}"
        )
    for r in results:
        if len(r.round_ratios) > 1:
            rounds = len(r.round_ratios)
            print(f"batch {r.batch}: {rounds} paired rounds (voxmon, then raw on a fresh file),"
                  f" ratios in run order {in_run_order(r.round_ratios)};"
                  " the median one is shown")  # fmt: skip
    print(f"\n{'batch':>6} {'aiohttp alone ev/s':>19} {'voxmon / alone':>15}"
          f" {'CPU µs/event: alone':>20} {'voxmon':>7}"
          "   (bare_server.py: the same posts, bodies split, nothing stored)")  # fmt: skip
    for r in results:
        voxmon_us = 1e4 * r.daemon_cpu_pct / r.http_events_per_s
        alone = cpu_per_event(r.bare_cpu_pct, r.bare_events_per_s, r.events)
        print(f"{r.batch:>6} {r.bare_events_per_s:>19,.0f}"
              f" {r.http_events_per_s / r.bare_events_per_s:>15.2f}"
              f" {alone:>20} {voxmon_us:>7.1f}")  # fmt: skip
    print(
        f"\n{'batch':>6} {'split ev/s':>11} {'/ raw':>6} {'/ voxmon':>9} {'CPU µs/event':>13}"
        "   (split_server.py, an experiment: voxmon's parse and commit in two processes)"
    )
    for r in results:
        cpu = cpu_per_event(r.split_cpu_pct, r.split_events_per_s, r.events)
        print(f"{r.batch:>6} {r.split_events_per_s:>11,.0f} {r.split_ratio:>6.2f}"
              f" {r.split_per_voxmon:>9.2f} {cpu:>13}")  # fmt: skip
    for r in results:
        if len(r.split_rounds) > 1:
            print(
                f"batch {r.batch}: split / its round's raw, in run order"
                f" {in_run_order(r.split_rounds)};"
                " shown: the median round, and split / voxmon's median over the rounds"
            )
    print(f"\n{'batch':>6} {'commits':>8} {'ev/commit':>10} {'commit ms':>10} {'writer busy':>12}"
          f" {'waiting':>8} {'daemon CPU':>11} {'client CPU':>11}")  # fmt: skip
    for r in results:
        print(
            f"{r.batch:>6} {r.commits:>8} {r.events_per_commit:>10.1f} {r.commit_ms:>10.2f}"
            f" {r.writer_busy_pct:>11.0f}% {r.writer_wait_pct:>7.0f}%"
            f" {r.daemon_cpu_pct:>10.0f}% {r.client_cpu_pct:>10.0f}%"
        )
    print(
        "\nwhere a group commit's cycle goes (ms): committing, waiting for the clients it"
        " answered, idle (nothing queued: answers and next posts on their way, the hops"
        " between the event loop and the database thread)"
    )
    print(f"{'batch':>6} {'cycle':>8} {'commit':>8} {'waiting':>8} {'idle':>9}")
    for r in results:
        cycle = 1000 * r.events / r.http_events_per_s / max(r.commits, 1)
        busy, waiting = cycle * r.writer_busy_pct / 100, cycle * r.writer_wait_pct / 100
        print(f"{r.batch:>6} {cycle:>8.2f} {busy:>8.2f} {waiting:>8.2f}"
              f" {cycle - busy - waiting:>9.2f}")  # fmt: skip
    for r in results:
        if r.batch in GOALS:
            ratio, rate = GOALS[r.batch]
            met = r.ratio >= ratio and r.http_events_per_s >= rate
            least = f", >= {rate:,} events/s" if rate else ""
            print(f"goal (batch {r.batch}, {r.clients} clients: ratio >= {ratio}{least}):"
                  f" {'met' if met else 'NOT met'}")  # fmt: skip


def in_run_order(ratios: Sequence[float]) -> str:
    """Each paired round's ratio, as the report lists them."""
    return ", ".join(f"{ratio:.2f}" for ratio in ratios)


def cpu_per_event(cpu_pct: float, events_per_s: float, events: int) -> str:
    """A server's CPU µs per event from its CPU (% of one core) over a run; "(too short)"
    when the run gave it under ``MIN_CPU_S`` of CPU: time is read in 10 ms clock ticks."""
    if cpu_pct / 100 * events / events_per_s < MIN_CPU_S:
        return "(too short)"
    return f"{1e4 * cpu_pct / events_per_s:.1f}"  # % of a core -> µs per event


def unwind_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C (exit 143 once the ``finally`` blocks have run)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts (smoke test)")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument(
        "--batch",
        type=int,
        action="append",
        choices=[s.batch for s in FULL],
        help="only this batch size's scenario (repeatable; default: all)",
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="postgresql://user@host:port/db: instead of SQLite, batch-1000 ingest through 1, 2"
        " and 3 voxmon replicas against raw COPY and executemany on that server, in throwaway"
        " databases voxmon_bench_<pid>_<figure> (URL's database is only used to create them)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        metavar="N",
        help="with --database-url: rounds of all five figures, interleaved; each figure's best"
        " round is reported (default 3, 1 with --quick)",
    )
    args = parser.parse_args(argv)
    unwind_on_sigterm()  # so the daemon is stopped and the temp dir removed
    if args.database_url:
        from benchmarks.replicas import run_postgres

        return run_postgres(
            args.database_url, quick=args.quick, rounds=args.rounds, as_json=args.json
        )
    info = machine()
    info["load_average"] = [round(os.getloadavg()[0], 2)]
    results: list[Result] = []
    scenarios = [s for s in (QUICK if args.quick else FULL) if s.batch in (args.batch or [s.batch])]
    try:
        with tempfile.TemporaryDirectory(prefix="voxmon-bench-") as tmp:
            for scenario in scenarios:
                print(f"batch {scenario.batch}: {scenario.events:,} events ...", file=sys.stderr)
                results.append(run_scenario(Path(tmp), scenario))
    except (BenchError, aiohttp.ClientError, TimeoutError) as exc:
        print(f"ingest benchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    info["load_average"].append(round(os.getloadavg()[0], 2))
    print_report(info, results)
    if args.json:
        print(json.dumps({"machine": info, "results": [asdict(r) for r in results]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
