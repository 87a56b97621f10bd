"""Job run records: the last run of each job and its run counts, whoever ran it (the
daemon's scheduler, an API request or the CLI), for catch-up, status and metrics."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class JobRun:
    """The last run of one job. Times are UTC epoch ms. ``trigger`` says who ran it
    (``schedule``, ``api`` or ``cli``); ``successes``/``failures``/``seconds_total`` count
    every recorded run of the job (monotonic, for Prometheus)."""

    job: str
    last_run_ms: int
    last_result: str
    last_error: str | None
    last_success_ms: int | None
    duration_s: float
    rows_written: int
    windows: str
    trigger: str = "schedule"
    successes: int = 0
    failures: int = 0
    seconds_total: float = 0.0


_COLUMNS = (
    "job, last_run_ms, last_result, last_error, last_success_ms, duration_s, rows_written,"
    " windows, trigger, successes, failures, seconds_total"
)


def record_run(conn: sqlite3.Connection, run: JobRun) -> JobRun:
    """Store a run and count it; ``last_success_ms`` survives failed runs. Returns the
    stored record with the updated counts."""
    success = run.last_result == "success"
    conn.execute(
        f"INSERT INTO job_runs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (job) DO UPDATE SET last_run_ms = excluded.last_run_ms,"
        " last_result = excluded.last_result, last_error = excluded.last_error,"
        " last_success_ms = COALESCE(excluded.last_success_ms, job_runs.last_success_ms),"
        " duration_s = excluded.duration_s, rows_written = excluded.rows_written,"
        " windows = excluded.windows, trigger = excluded.trigger,"
        " successes = job_runs.successes + excluded.successes,"
        " failures = job_runs.failures + excluded.failures,"
        " seconds_total = job_runs.seconds_total + excluded.seconds_total",
        (run.job, run.last_run_ms, run.last_result, run.last_error, run.last_success_ms,
         run.duration_s, run.rows_written, run.windows, run.trigger, int(success),
         int(not success), run.duration_s),
    )  # fmt: skip
    return load_runs(conn, run.job)[run.job]


def load_runs(conn: sqlite3.Connection, job: str | None = None) -> dict[str, JobRun]:
    """Every job's record, or one job's."""
    sql = f"SELECT {_COLUMNS} FROM job_runs"
    rows = conn.execute(sql, ()) if job is None else conn.execute(sql + " WHERE job = ?", (job,))
    return {row[0]: JobRun(*row) for row in rows}
