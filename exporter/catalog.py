"""The event catalog: every event type voxmon accepts, its stage and its kind.

This table is the only place event names live; validation, counters and rollups read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """What an event type means for counting."""

    ARTIFACT_START = "artifact_start"
    ARTIFACT_SUCCESS = "artifact_success"
    ARTIFACT_FAILURE = "artifact_failure"
    INFO = "info"
    START = "start"
    SUCCESS = "success"
    FAILURE = "failure"
    OUTCOME = "outcome"
    RETRY = "retry"
    SYSTEM = "system"
    COST = "cost"


STAGES: tuple[str, ...] = (
    "ingestion",
    "transcription",
    "claims_extraction",
    "entity_resolution",
    "draft_generation",
    "confirmation",
)
"""All stages in pipeline order."""

PROCESSING_STAGES: tuple[str, ...] = (
    "transcription",
    "claims_extraction",
    "entity_resolution",
    "draft_generation",
)
"""Stages with started/succeeded/failed events and a latency digest."""


@dataclass(frozen=True, slots=True)
class EventType:
    """One catalog row. ``stage`` is None for stage-less types (retry types take it from
    the payload); ``needs_artifact`` is False only for system and cost types."""

    name: str
    stage: str | None
    kind: Kind

    @property
    def needs_artifact(self) -> bool:
        return self.kind not in (Kind.SYSTEM, Kind.COST)

    @property
    def stage_from_payload(self) -> bool:
        return self.kind is Kind.RETRY


def _types() -> dict[str, EventType]:
    rows: list[tuple[str, str | None, Kind]] = [
        ("artifact_received", "ingestion", Kind.ARTIFACT_START),
        ("artifact_status_changed", None, Kind.INFO),
        ("artifact_completed", None, Kind.ARTIFACT_SUCCESS),
        ("artifact_failed", None, Kind.ARTIFACT_FAILURE),
        ("transcription_started", "transcription", Kind.START),
        ("transcription_completed", "transcription", Kind.SUCCESS),
        ("transcription_failed", "transcription", Kind.FAILURE),
        ("claims_extraction_started", "claims_extraction", Kind.START),
        ("claims_extracted", "claims_extraction", Kind.SUCCESS),
        ("claims_extraction_failed", "claims_extraction", Kind.FAILURE),
        ("entity_resolution_started", "entity_resolution", Kind.START),
        ("entity_resolution_completed", "entity_resolution", Kind.SUCCESS),
        ("entity_needs_disambiguation", "entity_resolution", Kind.SUCCESS),
        ("entity_resolution_failed", "entity_resolution", Kind.FAILURE),
        ("draft_generation_started", "draft_generation", Kind.START),
        ("drafts_generated", "draft_generation", Kind.SUCCESS),
        ("draft_generation_failed", "draft_generation", Kind.FAILURE),
        ("draft_confirmed", "confirmation", Kind.OUTCOME),
        ("draft_rejected", "confirmation", Kind.OUTCOME),
        ("retry_initiated", None, Kind.RETRY),
        ("retry_succeeded", None, Kind.RETRY),
        ("retry_failed", None, Kind.RETRY),
        ("circuit_breaker_opened", None, Kind.SYSTEM),
        ("circuit_breaker_closed", None, Kind.SYSTEM),
        ("budget_threshold_reached", None, Kind.COST),
        ("budget_exceeded", None, Kind.COST),
        ("rate_limit_hit", None, Kind.COST),
    ]
    return {name: EventType(name, stage, kind) for name, stage, kind in rows}


EVENT_TYPES: dict[str, EventType] = _types()
"""Every accepted event type by name (27 of them)."""

STARTED_TYPE: dict[str, str] = {
    t.stage: t.name for t in EVENT_TYPES.values() if t.kind is Kind.START and t.stage
}
"""Stage -> its ``<stage>_started`` event type (for derived durations)."""

ARTIFACT_RECEIVED = next(t.name for t in EVENT_TYPES.values() if t.kind is Kind.ARTIFACT_START)

CIRCUIT_OPENED = "circuit_breaker_opened"
CIRCUIT_CLOSED = "circuit_breaker_closed"

WINDOW_COUNTERS: tuple[str, ...] = (
    "artifacts_received",
    "artifacts_completed",
    "artifacts_failed",
    "transcriptions_completed",
    "claims_extracted",
    "entity_resolutions_completed",
    "drafts_generated",
    "stage_failures",
    "ai_cost_usd",
)
"""The 60-minute live counters kept per scope (how-it-works.md), in exposition order."""

_WINDOW_COUNTER_OF_TYPE: dict[str, str] = {
    "artifact_received": "artifacts_received",
    "artifact_completed": "artifacts_completed",
    "artifact_failed": "artifacts_failed",
    "transcription_completed": "transcriptions_completed",
    "claims_extracted": "claims_extracted",
    "entity_resolution_completed": "entity_resolutions_completed",
    "entity_needs_disambiguation": "entity_resolutions_completed",
    "drafts_generated": "drafts_generated",
}


def window_counters_for(event_type: EventType) -> tuple[str, ...]:
    """The count-type window counters one event of this type increments by 1.

    ``entity_needs_disambiguation`` finishes the entity-resolution stage, so it counts as a
    completed resolution. ``ai_cost_usd`` is added separately from metadata.
    """
    names = []
    if event_type.name in _WINDOW_COUNTER_OF_TYPE:
        names.append(_WINDOW_COUNTER_OF_TYPE[event_type.name])
    if event_type.kind is Kind.FAILURE:
        names.append("stage_failures")
    return tuple(names)


SNAPSHOT_COUNTER_OF_TYPE: dict[str, str] = {
    "entity_resolution_completed": "resolutions_completed",
    "entity_needs_disambiguation": "resolutions_needs_disambiguation",
    "draft_confirmed": "drafts_confirmed",
    "draft_rejected": "drafts_rejected",
    "retry_initiated": "retries_initiated",
    "retry_succeeded": "retries_succeeded",
    "retry_failed": "retries_failed",
    "circuit_breaker_opened": "circuit_breaker_openings",
    "budget_threshold_reached": "budget_threshold_reached",
    "budget_exceeded": "budget_exceeded",
    "rate_limit_hit": "rate_limit_hits",
}
"""Snapshot count parts fed by one event type (besides the kind-based artifact and stage
counts), how-it-works.md."""

_ENTITY_SUMS = {
    "entity_count": "entity_count_sum",
    "auto_resolved_count": "auto_resolved_sum",
    "disambiguation_count": "disambiguation_sum",
}
SNAPSHOT_METADATA_SUMS: dict[str, dict[str, str]] = {
    "transcription_completed": {"confidence": "transcript_confidence"},
    "claims_extracted": {"confidence": "claim_confidence", "claim_count": "claim_count_sum"},
    "entity_resolution_completed": _ENTITY_SUMS,
    "entity_needs_disambiguation": _ENTITY_SUMS,
    "drafts_generated": {"draft_count": "draft_count_sum"},
}
"""Event type -> metadata key -> snapshot part summing it. Confidence parts keep a count
and a sum of the events carrying ``metadata.confidence`` (how-it-works.md)."""

LATENCY_TYPES: tuple[str, ...] = tuple(
    t.name
    for t in EVENT_TYPES.values()
    if (t.kind is Kind.SUCCESS and t.stage in PROCESSING_STAGES) or t.kind is Kind.ARTIFACT_SUCCESS
)
"""Event types whose durations feed a latency digest: stage successes (per stage) and
``artifact_completed`` (end to end)."""

DISAMBIGUATION_TYPE = "entity_needs_disambiguation"
"""The success that leaves an artifact waiting for a coach to disambiguate entities."""

STAGE_ORDER: dict[str, int] = {stage: index for index, stage in enumerate(STAGES)}
