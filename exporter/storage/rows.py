"""What both storage backends share about their rows: the column lists, an event's row and
the decoding of an artifact row, the in-flight recount and the job-run upsert, written once
(only placeholders and types differ)."""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any

from exporter.artifacts import ArtifactState
from exporter.model import Event
from exporter.records import JobRun

EVENT_COLUMNS = (
    "event_id, event_type, ts_ms, artifact_id, org_id, voice_note_id,"
    " coach_user_id, stage, duration_ms, duration_source, previous_status, new_status,"
    " error_code, error_message, ai_cost_usd, confidence, claim_count, entity_count,"
    " auto_resolved_count, disambiguation_count, draft_count, metadata, received_ms"
)
_HEAD = attrgetter(
    "event_id", "event_type", "ts_ms", "artifact_id", "org_id", "voice_note_id",
    "coach_user_id", "stage", "duration_ms", "duration_source", "previous_status",
    "new_status", "error_code", "error_message",
)  # fmt: skip
_META = attrgetter(
    "ai_cost_usd", "confidence", "claim_count", "entity_count", "auto_resolved_count",
    "disambiguation_count", "draft_count",
)  # fmt: skip
_NO_META = (None,) * 7


def event_row(event: Event, received_ms: int) -> tuple[object, ...]:
    """The row of ``EVENT_COLUMNS``, built by C getters: this runs once per event inside
    the write transaction."""
    meta = event.metadata
    tail = (event.metadata_json, received_ms)
    return _HEAD(event) + (_NO_META if meta is None else _META(meta)) + tail


INFLIGHT_REBUILD = (
    "INSERT INTO inflight_minutes (minute_ms, stage, awaiting, notes)"
    " SELECT last_event_ms - ((last_event_ms % 60000) + 60000) % 60000,"
    " COALESCE(current_stage, ''), awaiting_disambiguation, COUNT(*)"
    " FROM artifacts WHERE status = 'in_flight' GROUP BY 1, 2, 3"
)
"""Notes in flight counted by last-event minute, stage and awaiting flag, from their rows
(``exporter.artifacts.inflight_key``; the floor of a negative time too)."""

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
