"""The benchmark scripts still run (tiny sizes; no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
