"""Job run records: the last run of each scheduled job, for catch-up and status."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class JobRun:
    """The last run of one job. Times are UTC epoch ms."""

    job: str
    last_run_ms: int
    last_result: str
    last_error: str | None
    last_success_ms: int | None
    duration_s: float
    rows_written: int
    windows: str


def record_run(conn: sqlite3.Connection, run: JobRun) -> None:
    """Store a run; ``last_success_ms`` survives failed runs."""
    conn.execute(
        "INSERT INTO job_runs (job, last_run_ms, last_result, last_error, last_success_ms,"
        " duration_s, rows_written, windows) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (job) DO UPDATE SET last_run_ms = excluded.last_run_ms,"
        " last_result = excluded.last_result, last_error = excluded.last_error,"
        " last_success_ms = COALESCE(excluded.last_success_ms, job_runs.last_success_ms),"
        " duration_s = excluded.duration_s, rows_written = excluded.rows_written,"
        " windows = excluded.windows",
        (run.job, run.last_run_ms, run.last_result, run.last_error, run.last_success_ms,
         run.duration_s, run.rows_written, run.windows),
    )  # fmt: skip


def load_runs(conn: sqlite3.Connection) -> dict[str, JobRun]:
    rows = conn.execute(
        "SELECT job, last_run_ms, last_result, last_error, last_success_ms, duration_s,"
        " rows_written, windows FROM job_runs"
    )
    return {row[0]: JobRun(*row) for row in rows}
