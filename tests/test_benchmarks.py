"""The benchmark scripts still run (tiny sizes; no timing is asserted), on SQLite and, with
``--database-url``, on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from subprocess import PIPE

import psycopg
import pytest

from tests.backends import SERVER, require_postgres

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("script", "args", "expect"),
    [
        ("ingest.py", ["--quick"], "HTTP ev/s"),
        ("rollup.py", ["--sizes", "2000", "--day-events", "2000"], "rollup-daily (1 day)"),
        ("queries.py", ["--orgs", "20", "--days", "5", "--requests", "20"], "orgs 5 d (top 100)"),
        ("client.py", ["--quick"], "end to end"),
        ("startup.py", ["--quick"], "second serve, same database: spawn -> exit 2"),
        ("orgs.py", ["--quick"], "ingest rate of new orgs"),
        ("hostile.py", ["--quick"], "/healthz p50:"),
        ("concurrency.py", ["--quick"], "goal (p99 < 50 ms while the rollup runs)"),
        ("latency_accuracy.py", ["--quick"], "shipped x1.15  91 + 107 bounds, 486 series"),
    ],
)
def test_benchmarks_run(script: str, args: list[str], expect: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert expect in result.stdout


@pytest.mark.parametrize(
    ("script", "args", "expect"),
    [
        ("ingest.py", ["--quick"], ["voxmon, 1 replica ", "voxmon, 2 replicas",
                                    "voxmon, 3 replicas", "raw COPY", "raw executemany"]),
        ("rollup.py", ["--sizes", "2000", "--day-events", "2000"],
         ["2,000 events       201", "4,824 hourly       201"]),
        ("queries.py", ["--orgs", "20", "--days", "5", "--requests", "20", "--json"],
         ["orgs 5 d (all 20)", '"orgs 5 d (all 20)": {"n": 2, "p50_ms": ']),
    ],
)  # fmt: skip
def test_benchmarks_run_on_postgres(script: str, args: list[str], expect: list[str]) -> None:
    """``--database-url``: every figure printed, and the throwaway databases dropped."""
    require_postgres()
    command = [sys.executable, str(ROOT / "benchmarks" / script), *args,
               "--database-url", SERVER + "postgres"]  # fmt: skip
    with subprocess.Popen(command, stdout=PIPE, stderr=PIPE, text=True, cwd=ROOT) as proc:
        stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    assert [line for line in expect if line not in stdout] == []
    with psycopg.connect(SERVER + "postgres") as conn:
        left = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"voxmon_bench_{proc.pid}_%",)
        ).fetchall()
    assert left == []
