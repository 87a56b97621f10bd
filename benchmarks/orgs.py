"""Organisation-cardinality benchmark: what a batch of organisations voxmon has never seen
costs to ingest when 0, 5k, 10k and 20k organisations were seen before it, and the
daemon's RSS and ``/metrics`` time as organisations pass the live-org cap.

Goal (issue 10): the ingest rate of a batch of new organisations does not fall as
organisations accumulate (each new org costs O(1): no scan over the orgs seen), and memory
and ``/metrics`` time stop growing at ``max_live_orgs`` (default 10,000). The script
reports the figures, it never fails on them: the exit status is non-zero only on errors.

A fresh daemon (``python -m exporter serve`` on 127.0.0.1, default settings, an empty
database in a temporary directory, ``--log-level WARNING``) receives notes of new
organisations, 4 events each (received, transcription started and completed, completed
with an AI cost), stamped within the last 50 minutes so they land in the live windows,
posted as arrays of 1,000 events by one client. Between levels the organisations up to the
next level are added untimed; then one step of ``--step`` (5,000) new organisations is
timed. RSS is the daemon's ``VmRSS``; ``/metrics`` time is the server-side
``Server-Timing`` of 20 scrapes. The last row makes the cap's worst case: every live
organisation active in every minute of the window (``--active-minutes``), so each holds 60
minute buckets.

Run: ``.venv/bin/python benchmarks/orgs.py [--quick] [--levels 0,5000,10000,20000]``;
``--source DIR`` runs the daemon from another voxmon checkout (to compare with a release
from before the caps).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

ROOT = Path(__file__).resolve().parent.parent
BATCH = 1000
READY_TIMEOUT_S = 60.0


class BenchError(Exception):
    """The run cannot produce a valid figure."""


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    events: int
    seconds: float
    new_orgs: int
    rss_mb: float
    metrics_p50_ms: float
    metrics_max_ms: float
    live_orgs: str

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


# --- the daemon ------------------------------------------------------------------------------


class Daemon:
    """``voxmon serve`` from ``source`` in a subprocess; SIGTERM on exit, killed if it hangs."""

    def __init__(self, workdir: Path, source: Path, env_extra: dict[str, str]) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = workdir / "daemon.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOXMON_")}
        env["PYTHONPATH"] = str(source)
        env.update(env_extra)
        command = [sys.executable, "-m", "exporter", "serve", "--db", str(workdir / "voxmon.db"),
                   "--port", str(self.port), "--log-level", "WARNING"]  # fmt: skip
        with self._log.open("wb") as log:  # cwd: no ./voxmon.toml is picked up
            self.proc = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=log)

    def __enter__(self) -> Daemon:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"daemon exited at start:\n{self._log.read_text()[-3000:]}")
            try:
                with opener.open(f"{self.url}/readyz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        self.__exit__(None)
        raise BenchError("daemon not ready")

    def __exit__(self, *_: object) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0


# --- traffic ---------------------------------------------------------------------------------


def rfc3339(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def note(org: str, tag: str, at_ms: int) -> list[dict[str, Any]]:
    """One note of ``org`` through transcription, 4 events from ``at_ms`` on."""
    base = {"org_id": org, "artifact_id": f"{org}-{tag}"}
    return [
        {"event_id": f"{org}-{tag}-r", "event_type": "artifact_received",
         "timestamp": rfc3339(at_ms), **base},
        {"event_id": f"{org}-{tag}-s", "event_type": "transcription_started",
         "timestamp": rfc3339(at_ms + 200), **base},
        {"event_id": f"{org}-{tag}-t", "event_type": "transcription_completed",
         "timestamp": rfc3339(at_ms + 8_200), "duration_ms": 8000.0, **base},
        {"event_id": f"{org}-{tag}-c", "event_type": "artifact_completed",
         "timestamp": rfc3339(at_ms + 9_000), "metadata": {"ai_cost_usd": 0.004}, **base},
    ]  # fmt: skip


def new_org_events(first: int, count: int, rng: random.Random) -> list[dict[str, Any]]:
    now_ms = time.time_ns() // 1_000_000
    events: list[dict[str, Any]] = []
    for n in range(first, first + count):
        events += note(f"org-{n:06d}", "n", now_ms - rng.randint(60_000, 3_000_000))
    return events


def every_minute_events(orgs: int, minutes: int) -> list[dict[str, Any]]:
    """One costed event per org in each of the last ``minutes`` whole minutes (the window
    holds 60; the current one is left out so the set stays inside it while it is posted).
    A cost event needs no note, so this fills the windows without adding notes in flight
    (whose gauges have a cost of their own)."""
    now_ms = time.time_ns() // 1_000_000
    current = now_ms - now_ms % 60_000
    return [
        {"event_id": f"org-{n:06d}-m{m}", "event_type": "budget_threshold_reached",
         "timestamp": rfc3339(current - m * 60_000 + 1_000), "org_id": f"org-{n:06d}",
         "metadata": {"ai_cost_usd": 0.001}}
        for m in range(1, minutes + 1)
        for n in range(orgs)
    ]  # fmt: skip


async def post(session: aiohttp.ClientSession, url: str, events: list[dict[str, Any]]) -> float:
    """Post ``events`` in arrays of ``BATCH``, one request at a time; seconds taken."""
    bodies = [msgspec.json.encode(events[i : i + BATCH]) for i in range(0, len(events), BATCH)]
    headers = {"Content-Type": "application/json"}
    started = time.perf_counter()
    for body in bodies:
        async with session.post(f"{url}/v1/events", data=body, headers=headers) as response:
            answer = await response.read()
            if response.status != 200 or msgspec.json.decode(answer)["rejected"]:
                raise BenchError(f"ingest answered {response.status}: {answer[:500]!r}")
    return time.perf_counter() - started


async def scrape_times(session: aiohttp.ClientSession, url: str) -> tuple[list[float], str]:
    """Server-side milliseconds of 20 scrapes, and the live-org gauges of the last."""
    times, text = [], ""
    for _ in range(20):
        async with session.get(f"{url}/metrics") as response:
            text = await response.text()
            times.append(float(response.headers["Server-Timing"].split("dur=")[1]))
    gauges = {
        line.split()[0]: int(float(line.split()[1]))
        for line in text.splitlines()
        if line.startswith(("voxmon_live_orgs ", "voxmon_orgs_seen "))
    }
    live = f"{gauges['voxmon_live_orgs']:,}" if gauges else "-"
    return sorted(times), live


async def measured(
    session: aiohttp.ClientSession, daemon: Daemon, label: str, events: list[dict[str, Any]],
    new_orgs: int,
) -> Row:  # fmt: skip
    seconds = await post(session, daemon.url, events)
    times, live = await scrape_times(session, daemon.url)
    return Row(label, len(events), seconds, new_orgs, daemon.rss_mb(), times[len(times) // 2],
               times[-1], live)  # fmt: skip


async def run(args: argparse.Namespace, daemon: Daemon) -> list[Row]:
    rng = random.Random(10)
    rows, seen = [], 0
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        rows.append(await measured(session, daemon, "(empty daemon)", [], 0))
        for level in args.levels:
            if level > seen:
                await post(session, daemon.url, new_org_events(seen, level - seen, rng))
                seen = level
            events = new_org_events(seen, args.step, rng)
            rows.append(await measured(session, daemon, f"{seen:,} seen", events, args.step))
            seen += args.step
        live = min(seen, args.cap)
        events = every_minute_events(live, args.active_minutes)
        label = f"{live:,} live x {args.active_minutes} min"
        rows.append(await measured(session, daemon, label, events, 0))
    return rows


def print_report(args: argparse.Namespace, rows: list[Row]) -> None:
    print(f"machine: {len(os.sched_getaffinity(0))} CPUs, {platform.platform()},"
          f" Python {platform.python_version()}; daemon from {args.source}")  # fmt: skip
    print(f"step: {args.step:,} new orgs x 4 events, arrays of {BATCH:,}, one client;"
          f" live-org cap {args.cap:,}")  # fmt: skip
    head = (f"{'before the step':<24}{'events':>9}{'ev/s':>9}{'us/new org':>12}{'RSS MB':>9}"
            f"{'/metrics p50 ms':>17}{'max ms':>9}{'live orgs':>11}")  # fmt: skip
    print(head)
    print("-" * len(head))
    for row in rows:
        per_org = f"{row.seconds * 1e6 / row.new_orgs:,.0f}" if row.new_orgs else "-"
        rate = f"{row.events_per_s:,.0f}" if row.events else "-"
        scrape = f"{row.metrics_p50_ms:>17.2f}{row.metrics_max_ms:>9.2f}"
        print(f"{row.label:<24}{row.events:>9,}{rate:>9}{per_org:>12}{row.rss_mb:>9.1f}"
              f"{scrape}{row.live_orgs:>11}")  # fmt: skip
    steps = [row for row in rows if row.new_orgs]
    if len(steps) >= 2:
        ratio = steps[-1].events_per_s / steps[0].events_per_s
        print(f"ingest rate of new orgs, last step / first step: {ratio:.2f}"
              " (goal: does not fall with the orgs already seen)")  # fmt: skip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="0,5000,10000,20000",
                        help="orgs already seen before each timed step")  # fmt: skip
    parser.add_argument("--step", type=int, default=5000, help="new orgs per timed step")
    parser.add_argument("--max-live-orgs", type=int, default=None,
                        help="the daemon's cap (default: its own default, 10,000)")  # fmt: skip
    parser.add_argument("--active-minutes", type=int, default=59)
    parser.add_argument("--source", type=Path, default=ROOT)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.levels, args.step, args.max_live_orgs, args.active_minutes = "0,50,100,200", 20, 100, 3
    args.levels = [int(level) for level in args.levels.split(",")]
    args.cap = args.max_live_orgs or 10_000
    return args


def main() -> int:
    args = parse_args()
    env = {"VOXMON_MAX_LIVE_ORGS": str(args.max_live_orgs)} if args.max_live_orgs else {}
    with tempfile.TemporaryDirectory(prefix="voxmon-bench-") as tmp:
        try:
            with Daemon(Path(tmp), args.source, env) as daemon:
                rows = asyncio.run(run(args, daemon))
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print_report(args, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
