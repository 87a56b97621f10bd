"""Per-item validation: every field rule of docs/event-contract.md, the time horizon,
duration precedence and batch isolation. Each rejection must name the field path and a
machine reason."""

from __future__ import annotations

import gc
import math
from typing import Any

import msgspec
import pytest

from exporter.model import (
    MAX_METADATA_BYTES,
    WIRE_MAX_DURATION_MS,
    DurationSource,
    Event,
    FieldError,
    Metadata,
)
from exporter.rejections import ItemInvalid
from exporter.validation import Checked, Horizon, validate_item, validate_items
from tests.conftest import T0_MS, make_event

HORIZON = Horizon()
SECOND = 1_000
HOUR = 3_600_000
DAY = 24 * HOUR


def _raw(**overrides: Any) -> bytes:
    return msgspec.json.encode(make_event(**overrides))


def _nested(levels: int) -> Any:
    """A JSON value with ``levels`` nested arrays: ``_nested(2) == [[0]]``."""
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


def _check(**overrides: Any) -> Checked:
    return validate_item(_raw(**overrides), T0_MS, HORIZON)


def _accept(**overrides: Any) -> Event:
    checked = _check(**overrides)
    assert checked.warning is None
    return checked.event


def _reject(**overrides: Any) -> ItemInvalid:
    with pytest.raises(ItemInvalid) as caught:
        _accept(**overrides)
    return caught.value


# Every catalog name, written out (not read from EVENT_TYPES), with the stage validation
# must normalise it to; system and cost types are sent without an artifact_id.
ACCEPTED_TYPES: list[tuple[str, str | None, bool]] = [
    ("artifact_received", "ingestion", True),
    ("artifact_status_changed", None, True),
    ("artifact_completed", None, True),
    ("artifact_failed", None, True),
    ("transcription_started", "transcription", True),
    ("transcription_completed", "transcription", True),
    ("transcription_failed", "transcription", True),
    ("claims_extraction_started", "claims_extraction", True),
    ("claims_extracted", "claims_extraction", True),
    ("claims_extraction_failed", "claims_extraction", True),
    ("entity_resolution_started", "entity_resolution", True),
    ("entity_resolution_completed", "entity_resolution", True),
    ("entity_needs_disambiguation", "entity_resolution", True),
    ("entity_resolution_failed", "entity_resolution", True),
    ("draft_generation_started", "draft_generation", True),
    ("drafts_generated", "draft_generation", True),
    ("draft_generation_failed", "draft_generation", True),
    ("draft_confirmed", "confirmation", True),
    ("draft_rejected", "confirmation", True),
    ("retry_initiated", None, True),
    ("retry_succeeded", None, True),
    ("retry_failed", None, True),
    ("circuit_breaker_opened", None, False),
    ("circuit_breaker_closed", None, False),
    ("budget_threshold_reached", None, False),
    ("budget_exceeded", None, False),
    ("rate_limit_hit", None, False),
]


def test_validate_accepted_types_list_has_27_distinct_names() -> None:
    assert len({name for name, _, _ in ACCEPTED_TYPES}) == 27


@pytest.mark.parametrize(("event_type", "stage", "with_artifact"), ACCEPTED_TYPES)
def test_validate_item_accepts_each_event_type(
    event_type: str, stage: str | None, with_artifact: bool
) -> None:
    artifact_id = "art-1" if with_artifact else None
    event = _accept(event_id="e-1", event_type=event_type, artifact_id=artifact_id)
    assert event == Event(
        event_id="e-1",
        event_type=event_type,
        ts_ms=T0_MS,
        artifact_id=artifact_id,
        org_id="org-a",
        stage=stage,
    )


def test_validate_item_keeps_every_optional_field() -> None:
    event = _accept(
        event_id="e-full",
        event_type="claims_extracted",
        timestamp="2026-11-28T12:00:00+02:00",
        artifact_id="art-9",
        org_id="org-z",
        voice_note_id="vn-1",
        coach_user_id="coach-1",
        stage="claims_extraction",
        duration_ms=1234.5,
        previous_status="extracting",
        new_status="extracted",
        error_code="E1",
        error_message="none",
        metadata={"claim_count": 3, "confidence": 0.75, "ai_cost_usd": 0.02, "ai_model": "m"},
    )
    assert event == Event(
        event_id="e-full",
        event_type="claims_extracted",
        ts_ms=T0_MS,
        artifact_id="art-9",
        org_id="org-z",
        voice_note_id="vn-1",
        coach_user_id="coach-1",
        stage="claims_extraction",
        duration_ms=1234.5,
        duration_source=DurationSource.GIVEN,
        previous_status="extracting",
        new_status="extracted",
        error_code="E1",
        error_message="none",
        metadata=Metadata(claim_count=3, confidence=0.75, ai_cost_usd=0.02, ai_model="m"),
        metadata_json='{"claim_count":3,"confidence":0.75,"ai_cost_usd":0.02,"ai_model":"m"}',
    )
    assert event.ai_cost_usd == 0.02


def test_validate_item_accepts_msgspec_raw_and_epoch_ms() -> None:
    raw = msgspec.Raw(_raw(event_id="e-raw", timestamp=T0_MS - 1))
    event = validate_item(raw, T0_MS, HORIZON).event
    assert (event.event_id, event.ts_ms) == ("e-raw", T0_MS - 1)


def test_validate_item_retry_stage_taken_from_payload() -> None:
    event = _accept(event_type="retry_initiated", stage="entity_resolution")
    assert event.stage == "entity_resolution"


def test_validate_item_org_id_absent_is_none() -> None:
    assert _accept(org_id=None).org_id is None


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"event_id": "x" * 128}, "event_id"),
        ({"artifact_id": "x" * 128}, "artifact_id"),
        ({"org_id": "x" * 128}, "org_id"),
        ({"voice_note_id": "x" * 128}, "voice_note_id"),
        ({"coach_user_id": "x" * 128}, "coach_user_id"),
        ({"previous_status": "x" * 64}, "previous_status"),
        ({"new_status": "x" * 64}, "new_status"),
        ({"error_code": "x" * 64}, "error_code"),
        ({"error_message": "x" * 2000}, "error_message"),
        ({"duration_ms": 0}, "duration_ms"),
        ({"duration_ms": 86_400_000}, "duration_ms"),
        ({"duration_ms": 30 * DAY}, "duration_ms"),
    ],
)
def test_validate_item_accepts_values_at_the_limit(overrides: dict[str, Any], field: str) -> None:
    event = _accept(**overrides)
    assert getattr(event, field) == overrides[field]


@pytest.mark.parametrize(
    "metadata",
    [
        {"claim_count": 0, "entity_count": 0, "auto_resolved_count": 0},
        {"disambiguation_count": 0, "draft_count": 0, "transcript_word_count": 0},
        {"retry_attempt": 0, "confidence": 0, "transcript_duration_s": 0, "ai_cost_usd": 0},
        {"confidence": 1, "ai_model": "m" * 128, "source_channel": "s" * 128},
        {"transcript_duration_s": 12.5, "ai_cost_usd": 0.001},
        {"claim_count": 10**9, "transcript_word_count": 10**9, "retry_attempt": 10**9},
        {"ai_cost_usd": 1_000.0, "transcript_duration_s": 3650 * 86400},
    ],
)
def test_validate_item_accepts_metadata_at_the_limit(metadata: dict[str, Any]) -> None:
    event = _accept(metadata=metadata)
    assert event.metadata == Metadata(**metadata)


# (overrides, field path, reason) — one row per docs/event-contract.md rule.
REJECTIONS: list[tuple[dict[str, Any], str, str]] = [
    ({"event_id": ""}, "event_id", "invalid_value"),
    ({"event_id": "x" * 129}, "event_id", "invalid_value"),
    ({"event_id": None}, "event_id", "missing_field"),
    ({"event_id": 7}, "event_id", "invalid_value"),
    ({"event_type": "artifact_exploded"}, "event_type", "unknown_event_type"),
    ({"event_type": None}, "event_type", "missing_field"),
    ({"event_type": 3}, "event_type", "invalid_value"),
    ({"timestamp": None}, "timestamp", "missing_field"),
    ({"timestamp": "28/11/2026 10:00"}, "timestamp", "invalid_timestamp"),
    ({"timestamp": "2026-11-28T10:00:00"}, "timestamp", "invalid_timestamp"),
    ({"timestamp": "2026-11-28T10:00:00.000"}, "timestamp", "invalid_timestamp"),
    ({"timestamp": True}, "timestamp", "invalid_timestamp"),
    ({"timestamp": 1.5e12}, "timestamp", "invalid_timestamp"),
    (
        {"event_type": "transcription_completed", "artifact_id": None},
        "artifact_id",
        "missing_field",
    ),
    ({"event_type": "artifact_status_changed", "artifact_id": ""}, "artifact_id", "invalid_value"),
    ({"artifact_id": "x" * 129}, "artifact_id", "invalid_value"),
    ({"org_id": "x" * 129}, "org_id", "invalid_value"),
    ({"org_id": ""}, "org_id", "invalid_value"),
    ({"voice_note_id": "x" * 129}, "voice_note_id", "invalid_value"),
    ({"coach_user_id": "x" * 129}, "coach_user_id", "invalid_value"),
    (
        {"event_type": "transcription_completed", "stage": "claims_extraction"},
        "stage",
        "stage_mismatch",
    ),
    ({"event_type": "artifact_received", "stage": "transcription"}, "stage", "stage_mismatch"),
    ({"event_type": "retry_failed", "stage": "polishing"}, "stage", "stage_mismatch"),
    ({"event_type": "artifact_status_changed", "stage": "ingestion"}, "stage", "stage_mismatch"),
    (
        {"event_type": "circuit_breaker_opened", "artifact_id": None, "stage": "transcription"},
        "stage",
        "stage_mismatch",
    ),
    ({"stage": 5}, "stage", "invalid_value"),
    ({"duration_ms": -1}, "duration_ms", "invalid_value"),
    ({"duration_ms": -0.001}, "duration_ms", "invalid_value"),
    ({"duration_ms": WIRE_MAX_DURATION_MS + 1}, "duration_ms", "invalid_value"),
    ({"duration_ms": 1e300}, "duration_ms", "invalid_value"),
    ({"duration_ms": "5"}, "duration_ms", "invalid_value"),
    ({"stage_started_at": "2026-11-28T10:00:01Z"}, "stage_started_at", "negative_duration"),
    (
        {
            "stage_started_at": "2026-11-28T09:59:30Z",
            "stage_completed_at": "2026-11-28T09:59:29.999Z",
        },
        "stage_started_at",
        "negative_duration",
    ),
    ({"stage_started_at": "yesterday"}, "stage_started_at", "invalid_timestamp"),
    ({"stage_started_at": False}, "stage_started_at", "invalid_timestamp"),
    ({"stage_completed_at": "2026-11-28T10:00:00"}, "stage_completed_at", "invalid_timestamp"),
    ({"previous_status": "x" * 65}, "previous_status", "invalid_value"),
    ({"new_status": "x" * 65}, "new_status", "invalid_value"),
    ({"error_code": "x" * 65}, "error_code", "invalid_value"),
    ({"error_message": "x" * 2001}, "error_message", "invalid_value"),
    ({"metadata": [1]}, "metadata", "invalid_value"),
    ({"metadata": {"claim_count": -1}}, "metadata.claim_count", "invalid_value"),
    ({"metadata": {"entity_count": -1}}, "metadata.entity_count", "invalid_value"),
    ({"metadata": {"auto_resolved_count": -1}}, "metadata.auto_resolved_count", "invalid_value"),
    (
        {"metadata": {"disambiguation_count": -1}},
        "metadata.disambiguation_count",
        "invalid_value",
    ),
    ({"metadata": {"draft_count": -1}}, "metadata.draft_count", "invalid_value"),
    (
        {"metadata": {"transcript_word_count": -1}},
        "metadata.transcript_word_count",
        "invalid_value",
    ),
    ({"metadata": {"retry_attempt": -1}}, "metadata.retry_attempt", "invalid_value"),
    ({"metadata": {"claim_count": 10**9 + 1}}, "metadata.claim_count", "invalid_value"),
    ({"metadata": {"draft_count": 2**63}}, "metadata.draft_count", "invalid_value"),
    ({"metadata": {"x": 1, "entity_count": 2**64}}, "metadata.entity_count", "invalid_value"),
    ({"metadata": {"claim_count": 1.5}}, "metadata.claim_count", "invalid_value"),
    ({"metadata": {"draft_count": "3"}}, "metadata.draft_count", "invalid_value"),
    ({"metadata": {"confidence": 1.01}}, "metadata.confidence", "invalid_value"),
    ({"metadata": {"confidence": -0.01}}, "metadata.confidence", "invalid_value"),
    (
        {"metadata": {"transcript_duration_s": -0.5}},
        "metadata.transcript_duration_s",
        "invalid_value",
    ),
    ({"metadata": {"ai_cost_usd": -0.01}}, "metadata.ai_cost_usd", "invalid_value"),
    # two of 1.7e308 turned the persisted cost counter into +Inf for good
    ({"metadata": {"ai_cost_usd": 1.7e308}}, "metadata.ai_cost_usd", "invalid_value"),
    ({"metadata": {"ai_cost_usd": 1_000.01}}, "metadata.ai_cost_usd", "invalid_value"),
    (
        {"metadata": {"transcript_duration_s": 1.7e308}},
        "metadata.transcript_duration_s",
        "invalid_value",
    ),
    ({"metadata": {"ai_model": "m" * 129}}, "metadata.ai_model", "invalid_value"),
    ({"metadata": {"ai_model": 4}}, "metadata.ai_model", "invalid_value"),
    ({"metadata": {"source_channel": "s" * 129}}, "metadata.source_channel", "invalid_value"),
    ({"foo": 1}, "foo", "unknown_field"),
    ({"eventId": "e-1"}, "eventId", "unknown_field"),
    ({"metadata": {"confidence": 0.5, "cost": 1, "ai_model": 4}}, "metadata.ai_model",
     "invalid_value"),
    ({"metadata": {"confidence": {"avg": 0.5}}}, "metadata.confidence", "invalid_value"),
    ({"metadata": {f"k{i}": i for i in range(65)}}, "metadata", "metadata_too_large"),
    ({"metadata": {"k" * 129: 1}}, "metadata", "metadata_too_large"),
    ({"metadata": {"blob": "x" * MAX_METADATA_BYTES}}, "metadata", "metadata_too_large"),
    ({"metadata": {"deep": _nested(33)}}, "metadata", "metadata_too_large"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "field", "reason"), REJECTIONS)
def test_validate_item_rejects_naming_the_field(
    overrides: dict[str, Any], field: str, reason: str
) -> None:
    error = _reject(**overrides)
    assert error.error.field == field
    assert error.reason == reason
    assert error.error.message


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"event_id": "x" * 129}, "Expected `str` of length <= 128"),
        ({"event_id": None}, "event_id is required"),
        ({"event_type": "artifact_exploded"}, "unknown event type 'artifact_exploded'"),
        (
            {"event_type": "drafts_generated", "artifact_id": None},
            "artifact_id is required for drafts_generated",
        ),
        ({"metadata": {"confidence": 1.01}}, "Expected `float` <= 1.0"),
        ({"metadata": {"claim_count": -1}}, "Expected `int` >= 0"),
        (
            {"metadata": {f"k{i}": i for i in range(65)}},
            "metadata has 65 keys; at most 64",
        ),
        (
            {"metadata": {"k" * 129: 1}},
            f"metadata key {'k' * 32!r}... has 129 characters; at most 128",
        ),
        (
            {"metadata": {"blob": "x" * 16_374}},
            "metadata is 16385 bytes; at most 16384",
        ),
        ({"metadata": {"deep": _nested(33)}}, "metadata nested more than 32 levels"),
        ({"bar": 1}, "unknown field 'bar'"),
        (
            {"event_type": "transcription_completed", "stage": "confirmation"},
            "stage 'confirmation' does not match transcription_completed, which has"
            " 'transcription'",
        ),
        (
            {"event_type": "rate_limit_hit", "stage": "confirmation"},
            "stage 'confirmation' does not match rate_limit_hit, which has no stage",
        ),
        (
            {"stage_started_at": "2026-11-28T10:00:02Z"},
            "stage_started_at is 2000 ms after the stage's end; duration must be >= 0",
        ),
    ],
)
def test_validate_item_rejection_message(overrides: dict[str, Any], message: str) -> None:
    assert _reject(**overrides).error.message == message


@pytest.mark.parametrize(
    "event_type",
    [
        "artifact_status_changed",
        "artifact_completed",
        "transcription_started",
        "draft_confirmed",
        "retry_succeeded",
    ],
)
def test_validate_item_artifact_required_for_artifact_types(event_type: str) -> None:
    error = _reject(event_type=event_type, artifact_id=None)
    assert (error.error.field, error.reason) == ("artifact_id", "missing_field")


@pytest.mark.parametrize(
    "event_type",
    [
        "circuit_breaker_opened",
        "circuit_breaker_closed",
        "budget_threshold_reached",
        "budget_exceeded",
        "rate_limit_hit",
    ],
)
def test_validate_item_artifact_optional_for_system_and_cost(event_type: str) -> None:
    event = _accept(event_type=event_type, artifact_id=None, org_id=None)
    assert (event.artifact_id, event.org_id, event.stage) == (None, None, None)


# --- open metadata ------------------------------------------------------------------


@pytest.mark.parametrize("extra", [{}, {"pipeline": {"score": -0.0}}])
def test_validate_item_stores_negative_zero_as_zero(extra: dict[str, Any]) -> None:
    """-0.0 passes ``>= 0`` and equals 0.0, but a minimum or maximum of both depends on the
    order rows come in (PostgreSQL's ``MIN`` returned either, so re-running an hour
    stored different digest bytes): the duration and the known metadata floats are
    stored as 0.0, the metadata text as sent."""
    metadata = {"ai_cost_usd": -0.0, "confidence": -0.0, **extra}
    event = _accept(duration_ms=-0.0, metadata=metadata)
    signs = [math.copysign(1.0, v) for v in (event.duration_ms, event.ai_cost_usd,
                                            event.metadata.confidence)]  # type: ignore[union-attr, arg-type]  # fmt: skip
    assert signs == [1.0, 1.0, 1.0]
    assert event.metadata_json is not None and b"-0.0" in event.metadata_json.encode()
    kept = _accept(duration_ms=0.25, metadata={"ai_cost_usd": 0.0, "confidence": 0.5})
    assert (kept.duration_ms, kept.ai_cost_usd, kept.metadata) == (
        0.25, 0.0, Metadata(confidence=0.5, ai_cost_usd=0.0),
    )  # fmt: skip


def test_validate_item_keeps_unknown_metadata_keys_with_their_values() -> None:
    metadata = {
        "confidence": 0.9,
        "avgConfidence": 0.87,
        "pipeline": {"version": "2.3", "flags": [1, None, True], "score": -1.5},
        "note": "é ✓",
        "big": 123456789012345678901234567890,
        "": None,
    }
    event = _accept(metadata=metadata)
    assert event.metadata == Metadata(confidence=0.9)
    assert event.metadata_json is not None
    assert msgspec.json.decode(event.metadata_json) == metadata


def test_validate_item_metadata_of_only_unknown_keys_has_no_known_values() -> None:
    event = _accept(metadata={"avgConfidence": 0.5})
    assert event.metadata == Metadata()
    assert event.metadata_json == '{"avgConfidence":0.5}'
    assert event.ai_cost_usd == 0.0


def test_validate_item_metadata_json_is_the_object_as_sent() -> None:
    sent = b'{ "claim_count" : 2 ,"x": [ 1, 1e5, "\\u00e9" ] }'
    raw = _raw().replace(b"}", b',  "metadata" : ' + sent + b" }")
    event = validate_item(raw, T0_MS, HORIZON).event
    assert event.metadata_json == sent.decode()
    assert event.metadata == Metadata(claim_count=2)


@pytest.mark.parametrize(
    ("metadata", "reason", "field"),
    [
        (b'{"x": "\xff"}', "invalid_json", "metadata"),
        (b'{"x": 1e400}', "invalid_value", "metadata"),
        (b'{"x": "\\ud800"}', "invalid_json", ""),  # the whole item is not JSON
        (b'{"claim_count": 1, "claim_count": -1}', "invalid_value", "metadata.claim_count"),
    ],
)
def test_validate_item_metadata_values_are_checked_even_unknown(
    metadata: bytes, reason: str, field: str
) -> None:
    raw = _raw().replace(b"}", b',"metadata":' + metadata + b"}")
    with pytest.raises(ItemInvalid) as caught:
        validate_item(raw, T0_MS, HORIZON)
    assert (caught.value.reason, caught.value.error.field) == (reason, field)


@pytest.mark.parametrize(
    "metadata",
    [
        {f"k{i}": i for i in range(64)},
        {"k" * 128: 1},
        {"blob": "x" * 16_373},
        {"deep": _nested(32)},
    ],
)
def test_validate_item_metadata_at_each_bound_is_accepted(metadata: dict[str, Any]) -> None:
    event = _accept(metadata=metadata)
    assert event.metadata_json is not None
    assert msgspec.json.decode(event.metadata_json) == metadata


@pytest.mark.parametrize("levels", [33, 900, 5_000, 200_000])
def test_validate_items_deep_metadata_is_a_rejection_naming_metadata(levels: int) -> None:
    deep = b"[" * levels + b"]" * levels
    raw = _raw(event_id="e-deep").replace(b"}", b',"metadata":{"deep":' + deep + b"}}")
    events, rejections, _ = validate_items([raw], T0_MS, HORIZON)
    assert events == []
    assert [(r.reason, r.errors[0].field) for r in rejections] == [
        ("metadata_too_large", "metadata")
    ]
    assert rejections[0].errors[0].message == "metadata nested more than 32 levels"


def test_validate_item_metadata_number_out_of_range_names_metadata() -> None:
    raw = _raw().replace(b"}", b',"metadata":{"avgConfidence":[1e999]}}')
    with pytest.raises(ItemInvalid) as caught:
        validate_item(raw, T0_MS, HORIZON)
    assert (caught.value.reason, caught.value.error.field) == ("invalid_value", "metadata")


# --- durations over the maximum -----------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"duration_ms": 31 * DAY},
            "duration from duration_ms is 2678400000 ms, over max_duration_days (30 days,"
            " 2592000000 ms); the event is stored without a duration",
        ),
        (
            {"duration_ms": 30 * DAY + 0.5},
            "duration from duration_ms is 2592000000.5 ms, over max_duration_days (30 days,"
            " 2592000000 ms); the event is stored without a duration",
        ),
        (
            {"stage_started_at": T0_MS - 30 * DAY - 1},
            "duration from the stage times is 2592000001 ms, over max_duration_days (30 days,"
            " 2592000000 ms); the event is stored without a duration",
        ),
        (
            {"duration_ms": 31 * DAY, "stage_started_at": T0_MS - 1000},
            "duration from duration_ms is 2678400000 ms, over max_duration_days (30 days,"
            " 2592000000 ms); the event is stored without a duration",
        ),
    ],
)
def test_validate_item_duration_over_max_is_dropped_with_a_warning(
    overrides: dict[str, Any], message: str
) -> None:
    checked = _check(event_type="artifact_completed", **overrides)
    assert checked.warning == FieldError("duration_ms", message)
    event = checked.event
    assert (event.event_type, event.ts_ms) == ("artifact_completed", T0_MS)
    assert (event.duration_ms, event.duration_source) == (None, DurationSource.OVER_MAX)


@pytest.mark.parametrize(
    ("max_ms", "duration_ms", "kept"),
    [(HOUR, HOUR, True), (HOUR, HOUR + 1, False), (3650 * DAY, WIRE_MAX_DURATION_MS, True)],
)
def test_validate_item_custom_max_duration(max_ms: int, duration_ms: int, kept: bool) -> None:
    checked = validate_item(_raw(duration_ms=duration_ms), T0_MS, HORIZON, max_ms)
    assert (checked.event.duration_ms is not None, checked.warning is None) == (kept, kept)


def test_validate_items_reports_warnings_by_index() -> None:
    items = [
        _raw(event_id="w-0"),
        _raw(event_id="w-1", event_type="artifact_completed", duration_ms=31 * DAY),
        _raw(event_id="w-2", duration_ms=-1),
        _raw(event_id="w-3", event_type="transcription_completed", stage_started_at=0),
    ]
    events, rejections, warnings = validate_items(items, T0_MS, HORIZON)
    assert [e.event_id for e in events] == ["w-0", "w-1", "w-3"]
    assert [(r.index, r.event_id) for r in rejections] == [(2, "w-2")]
    assert [(w.index, w.event_id, w.reason, w.errors[0].field) for w in warnings] == [
        (1, "w-1", "duration_over_max", "duration_ms"),
        (3, "w-3", "duration_over_max", "duration_ms"),
    ]


# --- the time horizon -------------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "expected_ms"),
    [
        (T0_MS + 300 * SECOND, T0_MS + 300 * SECOND),
        ("2026-11-28T10:05:00Z", T0_MS + 300 * SECOND),
        ("2026-11-28T12:05:00+02:00", T0_MS + 300 * SECOND),
        ("2026-11-28T10:04:59.999Z", T0_MS + 300 * SECOND - 1),
        (T0_MS - 48 * HOUR, T0_MS - 48 * HOUR),
        ("2026-11-26T10:00:00Z", T0_MS - 48 * HOUR),
        ("2026-11-26T10:00:00.001Z", T0_MS - 48 * HOUR + 1),
    ],
)
def test_validate_item_horizon_bounds_are_inclusive(timestamp: str | int, expected_ms: int) -> None:
    assert _accept(timestamp=timestamp).ts_ms == expected_ms


@pytest.mark.parametrize(
    "timestamp",
    [
        T0_MS + 301 * SECOND,
        T0_MS + 300 * SECOND + 1,
        "2026-11-28T10:05:01Z",
        "2027-01-01T00:00:00Z",
    ],
)
def test_validate_item_horizon_rejects_future(timestamp: str | int) -> None:
    error = _reject(timestamp=timestamp)
    assert (error.error.field, error.reason) == ("timestamp", "future_timestamp")
    assert "in the future" in error.error.message
    assert "at most 300 s ahead" in error.error.message


def test_validate_item_horizon_future_message_counts_seconds() -> None:
    error = _reject(timestamp=T0_MS + 301 * SECOND)
    assert error.error.message == (
        "timestamp is 301 s in the future; at most 300 s ahead of the server clock is accepted"
    )


@pytest.mark.parametrize(
    "timestamp", [T0_MS - 48 * HOUR - 1, "2026-11-26T09:59:59.999Z", "2026-11-20T10:00:00Z", 0]
)
def test_validate_item_horizon_rejects_too_old(timestamp: str | int) -> None:
    error = _reject(timestamp=timestamp)
    assert (error.error.field, error.reason) == ("timestamp", "too_old")
    assert "late-event horizon of 48 h" in error.error.message


def test_validate_item_horizon_too_old_message_gives_age() -> None:
    error = _reject(timestamp=T0_MS - 72 * HOUR)
    assert error.error.message == "timestamp is 72.0 h old, beyond the late-event horizon of 48 h"


@pytest.mark.parametrize(
    ("offset_ms", "accepted"),
    [(0, True), (1, False), (-HOUR, True), (-HOUR - 1, False)],
)
def test_validate_item_custom_horizon(offset_ms: int, accepted: bool) -> None:
    horizon = Horizon(future_ms=0, past_ms=HOUR)
    raw = _raw(timestamp=T0_MS + offset_ms)
    if accepted:
        assert validate_item(raw, T0_MS, horizon).event.ts_ms == T0_MS + offset_ms
    else:
        with pytest.raises(ItemInvalid):
            validate_item(raw, T0_MS, horizon)


# --- duration precedence ------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "duration", "source"),
    [
        (
            {
                "duration_ms": 1500,
                "stage_started_at": "2026-11-28T09:59:00Z",
                "stage_completed_at": "2026-11-28T09:59:50Z",
            },
            1500.0,
            DurationSource.GIVEN,
        ),
        ({"duration_ms": 0}, 0.0, DurationSource.GIVEN),
        ({"duration_ms": 12.25}, 12.25, DurationSource.GIVEN),
        (
            {
                "stage_started_at": "2026-11-28T09:59:00Z",
                "stage_completed_at": "2026-11-28T09:59:02.500Z",
            },
            2500.0,
            DurationSource.STAGE_TIMES,
        ),
        (
            {
                "stage_started_at": "2026-11-28T11:59:00+02:00",
                "stage_completed_at": T0_MS - 30 * SECOND,
            },
            30_000.0,
            DurationSource.STAGE_TIMES,
        ),
        ({"stage_started_at": "2026-11-28T09:58:00Z"}, 120_000.0, DurationSource.STAGE_TIMES),
        ({"stage_started_at": T0_MS}, 0.0, DurationSource.STAGE_TIMES),
        ({"stage_started_at": T0_MS - 86_400_000}, 86_400_000.0, DurationSource.STAGE_TIMES),
        ({"stage_started_at": T0_MS - 30 * DAY}, float(30 * DAY), DurationSource.STAGE_TIMES),
        ({"duration_ms": 30 * DAY}, float(30 * DAY), DurationSource.GIVEN),
        ({"stage_completed_at": "2026-11-28T09:59:00Z"}, None, None),
        ({}, None, None),
    ],
)
def test_validate_item_duration_precedence(
    overrides: dict[str, Any], duration: float | None, source: str | None
) -> None:
    event = _accept(event_type="transcription_completed", **overrides)
    assert event.duration_ms == duration
    assert event.duration_source == source


def test_validate_item_stage_completed_at_beats_timestamp() -> None:
    # Completed 10 s before the event was sent: the stage took 5 s, not 15 s.
    event = _accept(
        timestamp="2026-11-28T10:00:00Z",
        stage_started_at="2026-11-28T09:59:45Z",
        stage_completed_at="2026-11-28T09:59:50Z",
    )
    assert event.duration_ms == 5_000.0


# --- batches ------------------------------------------------------------------------


def test_validate_items_bad_items_do_not_sink_the_batch() -> None:
    bad = {
        2: _raw(event_id="b-2", metadata={"confidence": 2}),
        5: b'{"event_id": "b-5", ',
        9: _raw(event_id="b-9", timestamp=T0_MS + HOUR),
    }
    items = [bad.get(i, _raw(event_id=f"g-{i}", timestamp=T0_MS - i)) for i in range(10)]
    events, rejections, warnings = validate_items(items, T0_MS, HORIZON)
    assert warnings == []
    assert [e.event_id for e in events] == ["g-0", "g-1", "g-3", "g-4", "g-6", "g-7", "g-8"]
    assert [e.ts_ms for e in events] == [T0_MS - i for i in (0, 1, 3, 4, 6, 7, 8)]
    assert [(r.index, r.event_id, r.reason) for r in rejections] == [
        (2, "b-2", "invalid_value"),
        (5, None, "invalid_json"),
        (9, "b-9", "future_timestamp"),
    ]
    assert [[e.field for e in r.errors] for r in rejections] == [
        ["metadata.confidence"],
        [""],
        ["timestamp"],
    ]


def test_validate_items_empty_batch() -> None:
    assert validate_items([], T0_MS, HORIZON) == ([], [], [])


@pytest.mark.parametrize(
    ("raw", "event_id"),
    [
        (_raw(event_id="x" * 200), "x" * 128),
        (_raw(event_id=17), None),
        (b'"just a string"', None),
        (b"[1, 2]", None),
        (b"{nope", None),
        (_raw(event_id="e-keep", bogus=True), "e-keep"),
    ],
)
def test_validate_items_rejection_event_id(raw: bytes, event_id: str | None) -> None:
    _, rejections, _ = validate_items([raw], T0_MS, HORIZON)
    assert [r.event_id for r in rejections] == [event_id]


@pytest.mark.parametrize(
    ("raw", "reason", "field"),
    [
        (b"{nope", "invalid_json", ""),
        (b"", "invalid_json", ""),
        (b"[1, 2]", "invalid_type", ""),
        (b"42", "invalid_type", ""),
        (b"null", "invalid_type", ""),
        (_raw(extra=1), "unknown_field", "extra"),
        (_raw(artifact_id=None), "missing_field", "artifact_id"),
        (_raw(event_id=None), "missing_field", "event_id"),
        (_raw(org_id=""), "invalid_value", "org_id"),
        (_raw(event_type="nope"), "unknown_event_type", "event_type"),
        (_raw(timestamp="now"), "invalid_timestamp", "timestamp"),
        (_raw(timestamp=T0_MS + HOUR), "future_timestamp", "timestamp"),
        (_raw(timestamp=T0_MS - 49 * HOUR), "too_old", "timestamp"),
        (_raw(stage="confirmation"), "stage_mismatch", "stage"),
        (_raw(stage_started_at=T0_MS + 1), "negative_duration", "stage_started_at"),
    ],
)
def test_validate_items_rejection_reason(raw: bytes, reason: str, field: str) -> None:
    events, rejections, _ = validate_items([raw], T0_MS, HORIZON)
    assert events == []
    assert [(r.index, r.reason, r.errors[0].field) for r in rejections] == [(0, reason, field)]


def test_validated_event_is_immutable_and_outside_the_cycle_collector() -> None:
    """One is built per ingested item: a Struct the collector never walks, still frozen
    (docs/decisions/hot-path-structs.md)."""
    wire = make_event(metadata={"claim_count": 3, "note": ["kept", "as sent"]})
    raw = msgspec.json.encode(wire)
    event = validate_item(raw, T0_MS, HORIZON).event
    assert (event.event_id, event.ts_ms, event.metadata_json) == (
        wire["event_id"],
        T0_MS,
        '{"claim_count":3,"note":["kept","as sent"]}',
    )
    assert not gc.is_tracked(event)
    with pytest.raises(AttributeError):
        event.duration_ms = 1.0  # type: ignore[misc]
    assert validate_item(raw, T0_MS, HORIZON).event == event
