"""Job run records: the last run of each job and its run counts, whoever ran it (the
daemon's scheduler, an API request or the CLI), for catch-up, status and metrics."""

from __future__ import annotations

import sqlite3

from exporter.records import JobRun
from exporter.storage.rows import JOB_RUN_COLUMNS, JOB_RUN_UPSERT, job_run_values


class SqliteJobRuns:
    """The last run of each job and its run counts."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def record_run(self, run: JobRun) -> JobRun:
        """Store a run and count it; ``last_success_ms`` survives failed runs. Returns the
        stored record with the updated counts."""
        self._conn.execute(
            f"INSERT INTO job_runs ({JOB_RUN_COLUMNS}) VALUES ({', '.join('?' * 13)})"
            + JOB_RUN_UPSERT,
            job_run_values(run),
        )  # fmt: skip
        return self.load_runs(run.job)[run.job]

    def load_runs(self, job: str | None = None) -> dict[str, JobRun]:
        """Every job's record, or one job's."""
        sql = f"SELECT {JOB_RUN_COLUMNS} FROM job_runs"
        rows = (
            self._conn.execute(sql, ())
            if job is None
            else self._conn.execute(sql + " WHERE job = ?", (job,))
        )
        return {row[0]: JobRun(*row) for row in rows}
