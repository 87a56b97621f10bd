"""Derived durations (docs/event-contract.md, precedence steps 3 and 4): lookups, batch
starts, filling."""

from __future__ import annotations

import gc
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.durations import Lookup, apply_starts, lookup_for, starts_in_batch
from exporter.model import DurationSource, Event
from exporter.timestamps import datetime_to_ms

T0_MS = datetime_to_ms(datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC))
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MAX_MS = 30 * DAY_MS
STAGE_OF = {
    "artifact_received": "ingestion",
    "transcription_started": "transcription",
    "transcription_completed": "transcription",
    "transcription_failed": "transcription",
    "claims_extraction_started": "claims_extraction",
    "claims_extraction_failed": "claims_extraction",
    "entity_resolution_started": "entity_resolution",
    "entity_needs_disambiguation": "entity_resolution",
    "draft_generation_started": "draft_generation",
    "drafts_generated": "draft_generation",
    "draft_confirmed": "confirmation",
}


def _event(event_type: str, ts_ms: int = T0_MS, **fields: Any) -> Event:
    values: dict[str, Any] = {
        "event_id": f"{event_type}@{ts_ms}",
        "event_type": event_type,
        "ts_ms": ts_ms,
        "artifact_id": "art-1",
        "stage": STAGE_OF.get(event_type),
    }
    values.update(fields)
    return Event(**values)


@pytest.mark.parametrize(
    ("event_type", "lookup"),
    [
        ("artifact_completed", ("art-1", "artifact_received", T0_MS)),
        ("artifact_failed", ("art-1", "artifact_received", T0_MS)),
        ("transcription_completed", ("art-1", "transcription_started", T0_MS)),
        ("transcription_failed", ("art-1", "transcription_started", T0_MS)),
        ("claims_extraction_failed", ("art-1", "claims_extraction_started", T0_MS)),
        ("entity_needs_disambiguation", ("art-1", "entity_resolution_started", T0_MS)),
        ("drafts_generated", ("art-1", "draft_generation_started", T0_MS)),
        ("artifact_received", None),
        ("artifact_status_changed", None),
        ("transcription_started", None),
        ("draft_confirmed", None),
        ("retry_succeeded", None),
    ],
)
def test_lookup_for_each_kind(event_type: str, lookup: Lookup | None) -> None:
    assert lookup_for(_event(event_type)) == lookup


@pytest.mark.parametrize(
    "fields",
    [
        {"duration_ms": 12.0},
        {"duration_ms": 0.0},
        {"duration_source": DurationSource.OVER_MAX},
        {"artifact_id": None},
        {"artifact_id": ""},
    ],
)
def test_lookup_for_none_when_given_duration_or_no_artifact(fields: dict[str, Any]) -> None:
    assert lookup_for(_event("transcription_completed", **fields)) is None
    assert lookup_for(_event("artifact_completed", **fields)) is None


def test_lookup_for_uses_the_event_time() -> None:
    event = _event("drafts_generated", T0_MS + 1234, artifact_id="art-7")
    assert lookup_for(event) == ("art-7", "draft_generation_started", T0_MS + 1234)


def test_starts_in_batch_latest_start_at_or_before() -> None:
    batch = [
        _event("transcription_started", T0_MS - 9_000),
        _event("transcription_started", T0_MS - 4_000),
        _event("transcription_started", T0_MS),
        _event("transcription_started", T0_MS + 1),
        _event("transcription_started", T0_MS - 1_000, artifact_id="art-2"),
        _event("claims_extraction_started", T0_MS - 500),
        _event("artifact_received", T0_MS - 60_000),
    ]
    lookups: list[Lookup] = [
        ("art-1", "transcription_started", T0_MS),
        ("art-1", "transcription_started", T0_MS - 5_000),
        ("art-1", "transcription_started", T0_MS - 10_000),
        ("art-2", "transcription_started", T0_MS),
        ("art-3", "transcription_started", T0_MS),
        ("art-1", "artifact_received", T0_MS),
        ("art-1", "draft_generation_started", T0_MS),
    ]
    assert starts_in_batch(batch, lookups) == {
        ("art-1", "transcription_started", T0_MS): T0_MS,
        ("art-1", "transcription_started", T0_MS - 5_000): T0_MS - 9_000,
        ("art-2", "transcription_started", T0_MS): T0_MS - 1_000,
        ("art-1", "artifact_received", T0_MS): T0_MS - 60_000,
    }


def test_starts_in_batch_empty_inputs() -> None:
    assert starts_in_batch([], [("art-1", "artifact_received", T0_MS)]) == {}
    assert starts_in_batch([_event("artifact_received")], []) == {}


def test_starts_in_batch_then_apply_starts_end_to_end() -> None:
    batch = [
        _event("artifact_received", T0_MS - 120_000),
        _event("transcription_started", T0_MS - 100_000),
        _event("transcription_completed", T0_MS - 40_000),
        _event("artifact_completed", T0_MS),
    ]
    lookups = [lk for lk in map(lookup_for, batch) if lk is not None]
    result, discarded = apply_starts(batch, starts_in_batch(batch, lookups), MAX_MS)
    assert not discarded
    assert [(e.duration_ms, e.duration_source) for e in result] == [
        (None, None),
        (None, None),
        (60_000.0, DurationSource.STARTED_EVENT),
        (120_000.0, DurationSource.RECEIVED_EVENT),
    ]


@pytest.mark.parametrize(
    ("event_type", "start_type", "start_ms", "duration", "source"),
    [
        ("artifact_completed", "artifact_received", T0_MS - 90_000, 90_000.0, "received_event"),
        ("artifact_failed", "artifact_received", T0_MS - 1, 1.0, "received_event"),
        ("transcription_completed", "transcription_started", T0_MS, 0.0, "started_event"),
        ("transcription_failed", "transcription_started", T0_MS - 2_500, 2_500.0, "started_event"),
        (
            "entity_needs_disambiguation",
            "entity_resolution_started",
            T0_MS - DAY_MS,
            float(DAY_MS),
            "started_event",
        ),
        ("artifact_completed", "artifact_received", T0_MS - 30 * HOUR_MS, 30.0 * HOUR_MS,
         "received_event"),
        ("artifact_failed", "artifact_received", T0_MS - MAX_MS, float(MAX_MS), "received_event"),
        ("drafts_generated", "draft_generation_started", T0_MS - 3 * DAY_MS, 3.0 * DAY_MS,
         "started_event"),
    ],
)  # fmt: skip
def test_apply_starts_fills_duration_and_flags_source(
    event_type: str, start_type: str, start_ms: int, duration: float, source: str
) -> None:
    event = _event(event_type)
    (result,), discarded = apply_starts([event], {("art-1", start_type, T0_MS): start_ms}, MAX_MS)
    assert not discarded
    assert (result.duration_ms, result.duration_source) == (duration, source)
    assert result.event_id == event.event_id
    assert result.ts_ms == T0_MS


@pytest.mark.parametrize(
    ("event_type", "start_type", "source"),
    [
        ("artifact_completed", "artifact_received", "received_event"),
        ("transcription_failed", "transcription_started", "started_event"),
    ],
)
def test_apply_starts_leaves_duration_over_max_unset_and_counts_it(
    event_type: str, start_type: str, source: str
) -> None:
    event = _event(event_type)
    starts = {("art-1", start_type, T0_MS): T0_MS - MAX_MS - 1}
    result, discarded = apply_starts([event, event], starts, MAX_MS)
    flagged = msgspec.structs.replace(event, duration_source=DurationSource.OVER_MAX)
    assert result == [flagged, flagged]
    assert discarded == {source: 2}
    assert lookup_for(flagged) is None  # a second commit must not derive it again


@pytest.mark.parametrize(("max_ms", "kept"), [(HOUR_MS, True), (HOUR_MS - 1, False)])
def test_apply_starts_max_is_inclusive(max_ms: int, kept: bool) -> None:
    starts = {("art-1", "artifact_received", T0_MS): T0_MS - HOUR_MS}
    (result,), discarded = apply_starts([_event("artifact_completed")], starts, max_ms)
    assert (result.duration_ms, sum(discarded.values())) == (
        (float(HOUR_MS), 0) if kept else (None, 1)
    )
    assert not gc.is_tracked(result)  # built in the write transaction, never walked


def test_apply_starts_keeps_events_without_start_or_lookup() -> None:
    given = _event("transcription_completed", duration_ms=5.0, duration_source="duration_ms")
    no_start = _event("drafts_generated")
    received = _event("artifact_received")
    other_artifact = _event("artifact_completed", artifact_id="art-2")
    starts = {("art-1", "artifact_received", T0_MS): T0_MS - 10}
    result, discarded = apply_starts([given, no_start, received, other_artifact], starts, MAX_MS)
    assert not discarded
    assert result == [given, no_start, received, other_artifact]


def test_apply_starts_preserves_order_and_other_fields() -> None:
    events = [
        _event("artifact_completed", T0_MS, org_id="org-a"),
        _event("transcription_completed", T0_MS - 1_000, org_id="org-b", error_code="E"),
    ]
    starts = {
        ("art-1", "artifact_received", T0_MS): T0_MS - 5_000,
        ("art-1", "transcription_started", T0_MS - 1_000): T0_MS - 3_000,
    }
    result, _ = apply_starts(events, starts, MAX_MS)
    assert result == [
        Event(
            event_id=events[0].event_id,
            event_type="artifact_completed",
            ts_ms=T0_MS,
            artifact_id="art-1",
            org_id="org-a",
            duration_ms=5_000.0,
            duration_source=DurationSource.RECEIVED_EVENT,
        ),
        Event(
            event_id=events[1].event_id,
            event_type="transcription_completed",
            ts_ms=T0_MS - 1_000,
            artifact_id="art-1",
            org_id="org-b",
            stage="transcription",
            duration_ms=2_000.0,
            duration_source=DurationSource.STARTED_EVENT,
            error_code="E",
        ),
    ]


@settings(max_examples=150, deadline=None, database=None)
@given(
    starts=st.lists(
        st.tuples(st.sampled_from(["art-1", "art-2"]), st.integers(-50, 50)), max_size=12
    ),
    wanted=st.lists(
        st.tuples(st.sampled_from(["art-1", "art-2", "art-3"]), st.integers(-60, 60)),
        max_size=6,
    ),
)
def test_starts_in_batch_matches_brute_force(
    starts: list[tuple[str, int]], wanted: list[tuple[str, int]]
) -> None:
    batch = [_event("transcription_started", T0_MS + t, artifact_id=a) for a, t in starts]
    batch.append(_event("transcription_completed", T0_MS, artifact_id="art-1"))
    lookups: list[Lookup] = [(a, "transcription_started", T0_MS + t) for a, t in wanted]
    expected = {}
    for lookup in lookups:
        times = [T0_MS + t for a, t in starts if a == lookup[0] and T0_MS + t <= lookup[2]]
        if times:
            expected[lookup] = max(times)
    assert starts_in_batch(batch, lookups) == expected
