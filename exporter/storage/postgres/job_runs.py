"""Job run records: the last run of each job and its run counts, whoever ran it."""

from __future__ import annotations

from typing import Any

from exporter.records import JobRun
from exporter.storage.postgres.connection import Connection

_COLUMNS = (
    "job, last_run_ms, last_result, last_error, last_success_ms, duration_s, rows_written,"
    " windows, trigger, successes, failures, seconds_total"
)


class PgJobRuns:
    """The last run of each job and its run counts."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def record_run(self, run: JobRun) -> JobRun:
        """Store a run and count it; ``last_success_ms`` survives failed runs."""
        success = run.last_result == "success"
        self._conn.execute(
            f"INSERT INTO job_runs ({_COLUMNS}) VALUES"
            " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
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
        return self.load_runs(run.job)[run.job]

    def load_runs(self, job: str | None = None) -> dict[str, JobRun]:
        """Every job's record, or one job's."""
        sql = f"SELECT {_COLUMNS} FROM job_runs"
        args: tuple[Any, ...] = ()
        if job is not None:
            sql, args = sql + " WHERE job = %s", (job,)
        rows = self._conn.execute(sql, args).fetchall()
        return {str(row[0]): JobRun(*row) for row in rows}
