"""Notes in flight: the daemon's memory and its start-up time with many notes in flight.

Three daemons (``voxmon serve`` on 127.0.0.1, defaults, SIGTERM between runs), each timed from
spawn to ``/readyz`` answering 200 and its ``VmRSS`` read once ready:

- live: an empty database, then N new notes posted over HTTP (``artifact_received``, batches
  of 1,000 from 4 clients); RSS once every note is acknowledged, against RSS when it became
  ready;
- restart: the same database, N notes in flight and their events, started again;
- spread: a fresh file filled directly with N in-flight notes spread over six stages and the
  last 40 hours (artifact rows and the in-flight table, as ingest leaves them), and the
  median of 20 ``/metrics`` scrapes (each reads the in-flight gauges from the table).

Goal (issue 15): at most 100 MB more RSS than the empty daemon with 1M notes in flight, no
more after a restart, and ready within 2 s. Timings are printed, never asserted.

Run: ``.venv/bin/python benchmarks/inflight.py [--notes 1000000] [--quick] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter.storage.rows import INFLIGHT_REBUILD  # noqa: E402
from exporter.storage.sqlite.connection import connect  # noqa: E402

STAGES = ("transcription", "claims_extraction", "entity_resolution", "draft_generation",
          "confirmation", "ingestion")  # fmt: skip
INSERT = (
    "INSERT INTO artifacts (artifact_id, org_id, status, current_stage, last_event_type,"
    " last_event_ms, first_event_ms, awaiting_disambiguation) VALUES (?, ?, 'in_flight', ?,"
    " 'transcription_started', ?, ?, ?)"
)
BATCH, CLIENTS, READY_TIMEOUT_S = 1000, 4, 120.0
JSON = {"Content-Type": "application/json"}


def fill(db: Path, notes: int) -> None:
    conn = connect(db, synchronous="OFF")
    now_ms = int(time.time() * 1000)
    span = 40 * 3_600_000
    rows = (
        (f"note-{n:08d}", f"org-{n % 200:03d}", STAGES[n % len(STAGES)],
         now_ms - (n * 7919) % span, now_ms - span, int(n % 50 == 0))
        for n in range(notes)
    )  # fmt: skip
    conn.execute("BEGIN")
    conn.executemany(INSERT, rows)
    conn.execute(INFLIGHT_REBUILD)  # the in-flight table ingest keeps beside the rows
    conn.execute("COMMIT")
    conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(db: Path) -> Iterator[tuple[str, float, subprocess.Popen[bytes]]]:
    """A daemon on ``db``: its base URL, the seconds from spawn to ``/readyz`` 200, and the
    process; stopped with SIGTERM at the end."""
    port = free_port()
    command = [sys.executable, "-m", "exporter", "serve", "--db", str(db), "--port", str(port)]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=db.parent, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        while not ready(base):
            if process.poll() is not None or time.perf_counter() - started > READY_TIMEOUT_S:
                raise SystemExit(f"serve never became ready (exit {process.poll()})")
            time.sleep(0.01)
        yield base, time.perf_counter() - started, process
    finally:
        process.terminate()
        process.wait(timeout=60)


def ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/readyz", timeout=1) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def settled_rss_mb(pid: int) -> float:
    time.sleep(0.5)  # let start-up garbage settle
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def scrape_ms(base: str, rounds: int = 20) -> float:
    """Median ``/metrics`` latency in ms."""
    took = []
    for _ in range(rounds):
        started = time.perf_counter()
        with urllib.request.urlopen(f"{base}/metrics", timeout=60) as answer:
            answer.read()
        took.append((time.perf_counter() - started) * 1000)
    return statistics.median(took)


async def post_notes(base: str, notes: int) -> None:
    """``notes`` new notes, one ``artifact_received`` each, every batch acknowledged."""
    stamp = datetime.now(UTC).isoformat()
    bodies = iter(
        json.dumps([
            {"event_id": f"e-{n}", "event_type": "artifact_received", "timestamp": stamp,
             "artifact_id": f"note-{n:08d}", "org_id": f"org-{n % 200:03d}"}
            for n in range(start, min(start + BATCH, notes))
        ]).encode()
        for start in range(0, notes, BATCH)
    )  # fmt: skip

    async def client(session: aiohttp.ClientSession) -> None:
        for body in bodies:
            async with session.post(f"{base}/v1/events", data=body, headers=JSON) as answer:
                if answer.status != 200:
                    raise SystemExit(f"ingest answered {answer.status}: {await answer.text()}")

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
        await asyncio.gather(*(client(session) for _ in range(CLIENTS)))


def measure(tmp: Path, notes: int) -> dict[str, float]:
    live, spread = Path(tmp, "live.db"), Path(tmp, "spread.db")
    with serve(live) as (base, empty_s, process):
        empty_mb = settled_rss_mb(process.pid)
        started = time.perf_counter()
        asyncio.run(post_notes(base, notes))
        posted_s = time.perf_counter() - started
        live_mb = settled_rss_mb(process.pid)
    with serve(live) as (_, restart_s, process):
        restart_mb = settled_rss_mb(process.pid)
    fill(spread, notes)
    with serve(spread) as (spread_base, spread_s, process):
        spread_mb = settled_rss_mb(process.pid)
        spread_scrape_ms = scrape_ms(spread_base)
    return {"notes": notes, "empty_ready_s": empty_s, "empty_rss_mb": empty_mb,
            "posted_s": posted_s, "live_rss_mb": live_mb, "restart_ready_s": restart_s,
            "restart_rss_mb": restart_mb, "spread_ready_s": spread_s,
            "spread_rss_mb": spread_mb, "spread_scrape_ms": spread_scrape_ms}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="10,000 notes (smoke run)")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args()
    notes = 10_000 if args.quick else args.notes
    with tempfile.TemporaryDirectory(prefix="voxmon-inflight-") as tmp:
        r = measure(Path(tmp), notes)
    base = r["empty_rss_mb"]
    print(f"{'daemon':<44}{'ready s':>10}{'RSS MB':>10}{'added MB':>10}")
    for label, ready_s, mb in (
        ("empty database", r["empty_ready_s"], base),
        (f"after {notes:,} notes posted live ({r['posted_s']:.0f} s)", None, r["live_rss_mb"]),
        (f"restart with those {notes:,} notes in flight", r["restart_ready_s"],
         r["restart_rss_mb"]),
        (f"{notes:,} notes spread over 40 h, 6 stages", r["spread_ready_s"], r["spread_rss_mb"]),
    ):  # fmt: skip
        shown = "" if ready_s is None else f"{ready_s:.2f}"
        print(f"{label:<44}{shown:>10}{mb:>10.1f}{mb - base:>10.1f}")
    print(
        f"/metrics with {notes:,} notes spread over 40 h: {r['spread_scrape_ms']:.0f} ms (median)"
    )
    print(
        "goal: at most 100 MB added with 1M notes in flight, no more after a restart;"
        " ready within 2 s"
    )
    if args.json:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
