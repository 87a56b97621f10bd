"""What both storage backends share about their rows: the column lists, the decoding of an
artifact row, and the job-run upsert, written once (only placeholders and types differ)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from exporter.artifacts import ArtifactState
from exporter.records import JobRun

ARTIFACT_COLUMNS = (
    "artifact_id, org_id, status, current_stage, last_event_type, last_event_ms,"
    " first_event_ms, failed_stage, error_code, awaiting_disambiguation"
)
JOB_RUN_COLUMNS = (
    "job, last_run_ms, last_result, last_error, last_success_ms, duration_s, rows_written,"
    " windows, trigger, successes, failures, seconds_total, instance"
)
JOB_RUN_UPSERT = (
    " ON CONFLICT (job) DO UPDATE SET last_run_ms = excluded.last_run_ms,"
    " last_result = excluded.last_result, last_error = excluded.last_error,"
    " last_success_ms = COALESCE(excluded.last_success_ms, job_runs.last_success_ms),"
    " duration_s = excluded.duration_s, rows_written = excluded.rows_written,"
    " windows = excluded.windows, trigger = excluded.trigger,"
    " successes = job_runs.successes + excluded.successes,"
    " failures = job_runs.failures + excluded.failures,"
    " seconds_total = job_runs.seconds_total + excluded.seconds_total,"
    " instance = excluded.instance"
)
"""After ``INSERT INTO job_runs (JOB_RUN_COLUMNS) VALUES (…)``: ``last_success_ms``
survives failed runs and the counts add up."""


def artifact_state(row: Sequence[Any]) -> ArtifactState:
    """A row of ``ARTIFACT_COLUMNS``."""
    (artifact_id, org_id, status, stage, last_type, last_ms, first_ms, failed_stage,
     error_code, awaiting) = row  # fmt: skip
    return ArtifactState(
        artifact_id, org_id, status, stage, last_type, last_ms, first_ms, failed_stage,
        error_code, bool(awaiting),
    )  # fmt: skip


def job_run_values(run: JobRun) -> tuple[Any, ...]:
    """The values of ``JOB_RUN_COLUMNS`` for one run: it counts as one success or failure."""
    success = run.last_result == "success"
    return (run.job, run.last_run_ms, run.last_result, run.last_error, run.last_success_ms,
            run.duration_s, run.rows_written, run.windows, run.trigger, int(success),
            int(not success), run.duration_s, run.instance)  # fmt: skip
