"""Job run records: the last run of each job and its run counts, whoever ran it."""

from __future__ import annotations

from typing import Any

from exporter.records import JobRun
from exporter.storage.postgres.connection import Connection
from exporter.storage.rows import JOB_RUN_COLUMNS, JOB_RUN_UPSERT, job_run_values


class PgJobRuns:
    """The last run of each job and its run counts."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def record_run(self, run: JobRun) -> JobRun:
        """Store a run and count it; ``last_success_ms`` survives failed runs."""
        self._conn.execute(
            f"INSERT INTO job_runs ({JOB_RUN_COLUMNS}) VALUES"
            " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            + JOB_RUN_UPSERT,
            job_run_values(run),
        )  # fmt: skip
        return self.load_runs(run.job)[run.job]

    def load_runs(self, job: str | None = None) -> dict[str, JobRun]:
        """Every job's record, or one job's."""
        sql = f"SELECT {JOB_RUN_COLUMNS} FROM job_runs"
        args: tuple[Any, ...] = ()
        if job is not None:
            sql, args = sql + " WHERE job = %s", (job,)
        rows = self._conn.execute(sql, args).fetchall()
        return {str(row[0]): JobRun(*row) for row in rows}
