"""Issue 15's speed goals in one run: runs the benchmarks that measure them (each prints its
own table as it goes), then one table of every figure beside its goal, met or not met.

SQLite always; PostgreSQL too where a figure applies, on the server of ``--database-url``
(throwaway databases; default the local server; ``--database-url ''`` skips it, and a
server that cannot be reached is reported, not fatal). Ratios are taken within one run of
one script (HTTP ingest against raw inserts of the same rows), so a loaded machine moves
both sides alike; absolute figures (events/s, seconds, ms) are as loaded as the machine.
Last, ``benchmarks/commit.py`` times the batch-1000 commit alone on each backend, whole and
with voxmon's own parts left out, and a table sets those ratios beside the HTTP ratio (each
against raw inserts of the same rows, a transaction per request): where the ingest goals'
time goes, from the same run. The very last table sets voxmon's SQLite ingest ratios beside
those of the same validation and commit split over two processes (``split_server.py``, an
experiment the ingest benchmark runs; docs/decisions/ingest-process-split.md).

Run: ``.venv/bin/python benchmarks/goals.py [--quick] [--database-url URL]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

HERE = Path(__file__).resolve().parent
LOCAL_SERVER = "postgresql://root@127.0.0.1:5432/postgres"


@dataclass(frozen=True, slots=True)
class Goal:
    """One figure: what it measures, its value, how it compares with the goal."""

    figure: str
    value: float | None
    shown: str
    goal: str
    met: bool | None  # None: not measured


def run_json(script: str, *args: str) -> dict[str, Any] | None:
    """Run ``benchmarks/<script> --json`` with its output passed through; the JSON of its
    last stdout line, or None when it failed."""
    command = [sys.executable, str(HERE / script), "--json", *args]
    print(f"\n$ {' '.join(['python', f'benchmarks/{script}', '--json', *args])}", flush=True)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    last = ""
    for line in process.stdout:
        if line.startswith("{"):
            last = line
        else:
            print(line, end="", flush=True)
    if process.wait() != 0 or not last:
        print(f"benchmarks/{script} failed (exit {process.returncode})", flush=True)
        return None
    found: dict[str, Any] = json.loads(last)
    return found


def shown(value: float | None, fmt: str, unit: str = "") -> str:
    return "not measured" if value is None else f"{value:{fmt}}{unit}"


def at_least(figure: str, value: float | None, limit: float, unit: str, fmt: str) -> Goal:
    met = None if value is None else value >= limit
    return Goal(figure, value, shown(value, fmt, unit), f">= {limit:{fmt}}{unit}", met)


def at_most(figure: str, value: float | None, limit: float, unit: str, fmt: str) -> Goal:
    met = None if value is None else value <= limit
    return Goal(figure, value, shown(value, fmt, unit), f"<= {limit:{fmt}}{unit}", met)


def pick(found: dict[str, Any] | None, *path: str | int) -> float | None:
    """``found[path[0]][path[1]]...`` as a float, None where anything is missing."""
    value: Any = found
    for key in path:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            return None
    return None if value is None else float(value)


def ingest_goals(found: dict[str, Any] | None, label: str) -> Iterator[Goal]:
    results = (found or {}).get("results", [])
    by_batch = {r["batch"]: r for r in results}  # --quick runs fewer clients
    big, small = by_batch.get(1000, {}), by_batch.get(1, {})
    yield at_least(f"{label} ingest, batch 1000 / raw", big.get("ratio"), 0.8, " x", ".2f")
    yield at_least(f"{label} ingest, batch 1000", big.get("http_events_per_s"), 28_000,
                   " ev/s", ",.0f")  # fmt: skip
    yield at_least(f"{label} ingest, 16 single-event clients / raw", small.get("ratio"), 0.8,
                   " x", ".2f")  # fmt: skip


def best_rate(found: dict[str, Any] | None, name: str) -> float | None:
    """The best round's events/s of one figure of ``benchmarks/ingest.py --database-url``."""
    rounds = (found or {}).get("rounds", {}).get(name, [])
    return max((float(r["events_per_s"]) for r in rounds), default=None)


def postgres_ingest_goals(found: dict[str, Any] | None) -> Iterator[Goal]:
    one, copy = best_rate(found, "voxmon, 1 replica"), best_rate(found, "raw COPY")
    ratio = None if one is None or not copy else one / copy
    yield at_least("PostgreSQL ingest, batch 1000 / raw COPY", ratio, 0.8, " x", ".2f")
    yield at_least("PostgreSQL ingest, batch 1000", one, 28_000, " ev/s", ",.0f")


def rollup_goals(found: dict[str, Any] | None, label: str) -> Iterator[Goal]:
    hourly = next((key for key in found or {} if key.startswith("hourly_")), "hourly_1000000")
    yield at_most(f"{label} hourly rollup, 1M events, 200 orgs",
                  pick(found, hourly, "median_s"), 2.0, " s", ".2f")  # fmt: skip
    daily = pick(found, "daily", "median_s")
    yield at_most(f"{label} daily rollup, 24 x 201 hourly rows",
                  None if daily is None else daily * 1000, 100, " ms", ".0f")  # fmt: skip


def query_goals(found: dict[str, Any] | None, label: str) -> Iterator[Goal]:
    for name, key, limit in (
        ("org breakdown 90 d, top 100, p50", "orgs 90 d (top 100)", 50),
        ("org breakdown 90 d, all 1,000, p50", "orgs 90 d (all 1000)", 300),
    ):
        yield at_most(f"{label} {name}", pick(found, key, "p50_ms"), limit, " ms", ".1f")
    yield at_most(f"{label} history 90 d, p99", pick(found, "history 90 d platform", "p99_ms"),
                  20, " ms", ".1f")  # fmt: skip


def inflight_goals(found: dict[str, Any] | None) -> Iterator[Goal]:
    base = pick(found, "empty_rss_mb")
    for name, key in (
        ("RSS added, 1M notes in flight (live)", "live_rss_mb"),
        ("RSS added, 1M notes in flight (after restart)", "restart_rss_mb"),
    ):
        value = pick(found, key)
        added = None if value is None or base is None else value - base
        yield at_most(f"SQLite {name}", added, 100, " MB", ".1f")
    yield at_most("SQLite restart with 1M notes in flight, to ready",
                  pick(found, "restart_ready_s"), 2.0, " s", ".2f")  # fmt: skip


def reachable(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=3).close()
        return True
    except psycopg.Error as exc:
        print(f"PostgreSQL at {url} not reachable ({exc}); its figures are not measured")
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--database-url", default=os.environ.get("VOXMON_BENCH_DATABASE_URL",
                                                                 LOCAL_SERVER))  # fmt: skip
    args = parser.parse_args()
    pg = args.database_url if args.database_url and reachable(args.database_url) else ""
    quick = ["--quick"] if args.quick else []
    sizes = ["--sizes", "20000" if args.quick else "1000000"]
    day = ["--day-events", "5000"] if args.quick else []
    rows = ["--orgs", "50", "--days", "10", "--requests", "20"] if args.quick else []
    steps: list[tuple[str, Callable[[dict[str, Any] | None], Iterator[Goal]], list[str]]] = [
        ("ingest.py", lambda f: ingest_goals(f, "SQLite"), quick),
        ("rollup.py", lambda f: rollup_goals(f, "SQLite"), sizes + day),
        ("queries.py", lambda f: query_goals(f, "SQLite"), rows),
        ("inflight.py", inflight_goals, quick),
    ]
    if pg:
        url = ["--database-url", pg]
        steps += [
            ("ingest.py", postgres_ingest_goals, quick + url),
            ("rollup.py", lambda f: rollup_goals(f, "PostgreSQL"), sizes + day + url),
            ("queries.py", lambda f: query_goals(f, "PostgreSQL"), rows + url),
        ]
    found = [(judge, run_json(script, *extra)) for script, judge, extra in steps]
    goals = [goal for judge, result in found for goal in judge(result)]
    commit = ["--events", "4000", "--rounds", "1"] if args.quick else []
    ceilings = [run_json("commit.py", *commit)]
    if pg:
        ceilings.append(run_json("commit.py", *commit, "--database-url", pg))
    print_table(goals, quick=args.quick)
    print_ceilings([result for result in ceilings if result], goals, quick=args.quick)
    print_split(found[0][1])
    return 0


def print_table(goals: list[Goal], quick: bool) -> None:
    print(f"\nIssue 15 goals ({os.cpu_count()} cpus, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}"
          f"{'; --quick: sizes are not the goals own' if quick else ''})")  # fmt: skip
    width = max(len(g.figure) for g in goals) + 2
    print(f"{'figure':<{width}}{'measured':>16}{'goal':>16}  result")
    for g in goals:
        result = "not measured" if g.met is None else "met" if g.met else "NOT MET"
        print(f"{g.figure:<{width}}{g.shown:>16}{g.goal:>16}  {result}")
    met = sum(1 for g in goals if g.met)
    print(f"{met} of {len(goals)} goals met")


HTTP_FIGURES = {
    "SQLite": ("SQLite ingest, batch 1000 / raw", "SQLite ingest, batch 1000"),
    "PostgreSQL": ("PostgreSQL ingest, batch 1000 / raw COPY", "PostgreSQL ingest, batch 1000"),
}
"""Per backend, the goals giving the HTTP ratio and the HTTP events/s."""
CEILING_VARIANTS = ("voxmon", "no read model", "no read model, no counters", "events only")


def print_ceilings(found: list[dict[str, Any]], goals: list[Goal], quick: bool = False) -> None:
    """Where the batch-1000 ratio goes: the commit alone (``benchmarks/commit.py``: in-process,
    one thread, no HTTP) over its raw inserts, whole and with voxmon's parts left out; the
    HTTP ratio of the goals table (over the ingest benchmark's own raw inserts); the HTTP
    rate over the commit alone's; and both raw rates, which measure the same insert apart."""
    if not found:
        return
    print("\nThe batch-1000 commit alone / raw (benchmarks/commit.py), and over HTTP"
          f"{' (--quick: a few commits, noise)' if quick else ''}")  # fmt: skip
    names = ["whole", "no read model", "nor counters", "events only", "HTTP", "HTTP / whole"]
    print(f"{'backend':<12}" + "".join(f"{name:>15}" for name in names))
    values = {g.figure: g.value for g in goals}
    raws = []
    for result in found:
        commit = {name: pick(result, "variants", name, "ratio") for name in CEILING_VARIANTS}
        ratio_goal, rate_goal = HTTP_FIGURES[result["backend"]]
        http, rate = values.get(ratio_goal), values.get(rate_goal)
        alone = pick(result, "variants", "voxmon", "events_per_s")
        kept = None if rate is None or not alone else rate / alone
        cells = [shown(v, ".2f", " x") for v in (*commit.values(), http, kept)]
        print(f"{result['backend']:<12}" + "".join(f"{cell:>15}" for cell in cells))
        raw = pick(result, "variants", "raw", "events_per_s")
        ingest_raw = None if http is None or rate is None or not http else rate / http
        raws.append(f"{result['backend']} {shown(raw, ',.0f')} (commit.py)"
                    f" / {shown(ingest_raw, ',.0f')} (ingest)")  # fmt: skip
    print(f"raw inserts, rows/s: {'; '.join(raws)}")


def print_split(found: dict[str, Any] | None) -> None:
    """The lever the single-event figure waits for, from the SQLite ingest run: voxmon's
    validation and commit split over two processes (``benchmarks/split_server.py``, an
    experiment; docs/decisions/ingest-process-split.md) beside voxmon, each over the raw
    rate of its own paired round."""
    results = (found or {}).get("results", [])
    if not results:
        return
    print("\nvoxmon's validation and commit split over two processes / raw"
          " (benchmarks/split_server.py, an experiment)")  # fmt: skip
    print(f"{'batch':>6}{'clients':>8}{'voxmon':>10}{'split':>10}")
    for r in results:
        split = float(r["split_ratio"])  # over its own round's raw inserts
        print(f"{r['batch']:>6}{r['clients']:>8}{r['ratio']:>8.2f} x{split:>8.2f} x")


if __name__ == "__main__":
    raise SystemExit(main())
