"""The event catalog against the catalog table of docs/event-contract.md, written out here
on purpose."""

from __future__ import annotations

import pytest

from exporter.catalog import (
    ARTIFACT_RECEIVED,
    EVENT_TYPES,
    PROCESSING_STAGES,
    STAGES,
    STARTED_TYPE,
    WINDOW_COUNTERS,
    EventType,
    Kind,
    window_counters_for,
)

# the catalog in event-contract.md, row by row: event_type -> (stage, kind).
EXPECTED: dict[str, tuple[str | None, str]] = {
    "artifact_received": ("ingestion", "artifact_start"),
    "artifact_status_changed": (None, "info"),
    "artifact_completed": (None, "artifact_success"),
    "artifact_failed": (None, "artifact_failure"),
    "transcription_started": ("transcription", "start"),
    "transcription_completed": ("transcription", "success"),
    "transcription_failed": ("transcription", "failure"),
    "claims_extraction_started": ("claims_extraction", "start"),
    "claims_extracted": ("claims_extraction", "success"),
    "claims_extraction_failed": ("claims_extraction", "failure"),
    "entity_resolution_started": ("entity_resolution", "start"),
    "entity_resolution_completed": ("entity_resolution", "success"),
    "entity_needs_disambiguation": ("entity_resolution", "success"),
    "entity_resolution_failed": ("entity_resolution", "failure"),
    "draft_generation_started": ("draft_generation", "start"),
    "drafts_generated": ("draft_generation", "success"),
    "draft_generation_failed": ("draft_generation", "failure"),
    "draft_confirmed": ("confirmation", "outcome"),
    "draft_rejected": ("confirmation", "outcome"),
    "retry_initiated": (None, "retry"),
    "retry_succeeded": (None, "retry"),
    "retry_failed": (None, "retry"),
    "circuit_breaker_opened": (None, "system"),
    "circuit_breaker_closed": (None, "system"),
    "budget_threshold_reached": (None, "cost"),
    "budget_exceeded": (None, "cost"),
    "rate_limit_hit": (None, "cost"),
}

NO_ARTIFACT = {
    "circuit_breaker_opened",
    "circuit_breaker_closed",
    "budget_threshold_reached",
    "budget_exceeded",
    "rate_limit_hit",
}


def test_catalog_has_exactly_27_event_types() -> None:
    assert len(EXPECTED) == 27
    assert len(EVENT_TYPES) == 27
    assert set(EVENT_TYPES) == set(EXPECTED)


def test_catalog_stages_in_pipeline_order() -> None:
    assert STAGES == (
        "ingestion",
        "transcription",
        "claims_extraction",
        "entity_resolution",
        "draft_generation",
        "confirmation",
    )
    assert PROCESSING_STAGES == (
        "transcription",
        "claims_extraction",
        "entity_resolution",
        "draft_generation",
    )


@pytest.mark.parametrize(("name", "stage", "kind"), [(n, s, k) for n, (s, k) in EXPECTED.items()])
def test_catalog_row_matches_design_table(name: str, stage: str | None, kind: str) -> None:
    event_type = EVENT_TYPES[name]
    assert event_type.name == name
    assert event_type.stage == stage
    assert event_type.kind == Kind(kind)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_catalog_needs_artifact_false_only_for_system_and_cost(name: str) -> None:
    assert EVENT_TYPES[name].needs_artifact is (name not in NO_ARTIFACT)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_catalog_stage_from_payload_only_for_retry_types(name: str) -> None:
    expected = name in ("retry_initiated", "retry_succeeded", "retry_failed")
    assert EVENT_TYPES[name].stage_from_payload is expected


def test_catalog_every_stage_is_known() -> None:
    used = {t.stage for t in EVENT_TYPES.values() if t.stage is not None}
    assert used == set(STAGES)


def test_catalog_started_type_per_processing_stage() -> None:
    assert STARTED_TYPE == {
        "transcription": "transcription_started",
        "claims_extraction": "claims_extraction_started",
        "entity_resolution": "entity_resolution_started",
        "draft_generation": "draft_generation_started",
    }
    assert ARTIFACT_RECEIVED == "artifact_received"


def test_catalog_window_counters_in_exposition_order() -> None:
    assert WINDOW_COUNTERS == (
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


WINDOW_MAPPING: dict[str, tuple[str, ...]] = {
    "artifact_received": ("artifacts_received",),
    "artifact_status_changed": (),
    "artifact_completed": ("artifacts_completed",),
    "artifact_failed": ("artifacts_failed",),
    "transcription_started": (),
    "transcription_completed": ("transcriptions_completed",),
    "transcription_failed": ("stage_failures",),
    "claims_extraction_started": (),
    "claims_extracted": ("claims_extracted",),
    "claims_extraction_failed": ("stage_failures",),
    "entity_resolution_started": (),
    "entity_resolution_completed": ("entity_resolutions_completed",),
    "entity_needs_disambiguation": ("entity_resolutions_completed",),
    "entity_resolution_failed": ("stage_failures",),
    "draft_generation_started": (),
    "drafts_generated": ("drafts_generated",),
    "draft_generation_failed": ("stage_failures",),
    "draft_confirmed": (),
    "draft_rejected": (),
    "retry_initiated": (),
    "retry_succeeded": (),
    "retry_failed": (),
    "circuit_breaker_opened": (),
    "circuit_breaker_closed": (),
    "budget_threshold_reached": (),
    "budget_exceeded": (),
    "rate_limit_hit": (),
}


@pytest.mark.parametrize(("name", "counters"), sorted(WINDOW_MAPPING.items()))
def test_window_counters_for_each_type(name: str, counters: tuple[str, ...]) -> None:
    assert window_counters_for(EVENT_TYPES[name]) == counters


def test_window_counters_for_covers_the_whole_catalog() -> None:
    assert set(WINDOW_MAPPING) == set(EVENT_TYPES)


def test_window_counters_for_never_yields_ai_cost() -> None:
    # ai_cost_usd is added from metadata, never as a count of 1.
    yielded = {c for t in EVENT_TYPES.values() for c in window_counters_for(t)}
    assert yielded == set(WINDOW_COUNTERS) - {"ai_cost_usd"}


def test_event_type_is_frozen() -> None:
    event_type = EventType("x", None, Kind.INFO)
    with pytest.raises(AttributeError):
        event_type.name = "y"  # type: ignore[misc]
