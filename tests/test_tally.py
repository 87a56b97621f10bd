"""Tally: what newly accepted events add to counters, maxima, window minutes and orgs."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.live.families import END_TO_END_BUCKETS_S, STAGE_BUCKETS_S, log_bounds
from exporter.live.orgs import OrgRegistry
from exporter.live.tally import NO_ORG, Tally, bucket_index, tally
from exporter.model import Event, Metadata
from exporter.timestamps import datetime_to_ms

T0_MS = datetime_to_ms(datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC))
MINUTE = 60_000
WINDOW_START = T0_MS - 59 * MINUTE
STAGE_OF = {
    "artifact_received": "ingestion",
    "transcription_started": "transcription",
    "transcription_completed": "transcription",
    "transcription_failed": "transcription",
    "claims_extracted": "claims_extraction",
    "claims_extraction_failed": "claims_extraction",
    "entity_needs_disambiguation": "entity_resolution",
    "entity_resolution_completed": "entity_resolution",
    "drafts_generated": "draft_generation",
    "draft_generation_failed": "draft_generation",
    "draft_confirmed": "confirmation",
}


def _event(event_type: str = "artifact_received", **fields: Any) -> Event:
    cost = fields.pop("cost", None)
    values: dict[str, Any] = {
        "event_id": "e",
        "event_type": event_type,
        "ts_ms": T0_MS,
        "artifact_id": "art-1",
        "stage": STAGE_OF.get(event_type),
    }
    values.update(fields)
    if cost is not None:
        values["metadata"] = Metadata(ai_cost_usd=cost)
    return Event(**values)


def _tally(
    *events: Event, known: tuple[str, ...] = (), live: int = 100, series: int = 100
) -> Tally:
    registry = OrgRegistry(max_live_orgs=live, max_org_series=series)
    registry.load(known, len(known))
    return tally(events, WINDOW_START, registry)


# --- bucket_index -------------------------------------------------------------------------


def test_duration_buckets_are_log_spaced_by_1_15() -> None:
    assert (len(STAGE_BUCKETS_S), len(END_TO_END_BUCKETS_S)) == (91, 107)
    assert STAGE_BUCKETS_S[:6] == (0.05, 0.0575, 0.06612, 0.07604, 0.08745, 0.1006)
    assert (STAGE_BUCKETS_S[-1], END_TO_END_BUCKETS_S[0], END_TO_END_BUCKETS_S[-1]) == (
        14510.0, 1.0, 2716000.0,
    )  # fmt: skip
    for bounds in (STAGE_BUCKETS_S, END_TO_END_BUCKETS_S):
        ratios = [b / a for a, b in itertools.pairwise(bounds)]
        assert min(ratios) > 1.149 and max(ratios) < 1.151


def test_log_bounds_cover_the_end() -> None:
    assert log_bounds(1.0, 2.0, 1.5) == (1.0, 1.5, 2.25)


@pytest.mark.parametrize(("index", "bound"), [(0, 0.05), (10, 0.2023), (30, 3.311), (90, 14510.0)])
def test_bucket_index_value_at_bound_lands_in_that_bucket(index: int, bound: float) -> None:
    assert bucket_index(STAGE_BUCKETS_S, bound) == index
    assert bucket_index(STAGE_BUCKETS_S, bound + 1e-9) == index + 1


@pytest.mark.parametrize(
    ("seconds", "index"),
    [(0.0, 0), (0.001, 0), (0.0500001, 1), (0.75, 20), (59.999, 51), (86_400, 91)],
)
def test_bucket_index_between_bounds(seconds: float, index: int) -> None:
    assert bucket_index(STAGE_BUCKETS_S, seconds) == index


@pytest.mark.parametrize(
    ("duration_ms", "index"),
    [(50, "0"), (100.6, "5"), (202.3, "10"), (3311, "30"), (14_510_000, "90")],
)
def test_tally_histogram_ms_exactly_at_bound(duration_ms: float, index: str) -> None:
    result = _tally(_event("transcription_completed", duration_ms=duration_ms))
    buckets = {k: v for k, v in result.counters.items() if k[0] == "stage_duration_bucket"}
    assert buckets == {("stage_duration_bucket", "transcription", index): 1.0}


# --- scopes and window minutes -------------------------------------------------------------


def test_tally_event_with_org_counts_platform_and_org_minutes() -> None:
    result = _tally(_event("artifact_received", org_id="org-a", ts_ms=T0_MS + 30_000))
    assert result.minutes == {
        ("", T0_MS, "artifacts_received"): 1.0,
        ("org-a", T0_MS, "artifacts_received"): 1.0,
    }


def test_tally_event_without_org_counts_platform_only() -> None:
    result = _tally(_event("artifact_failed"), _event("transcription_failed", ts_ms=T0_MS - 1))
    assert result.minutes == {
        ("", T0_MS, "artifacts_failed"): 1.0,
        ("", T0_MS - MINUTE, "stage_failures"): 1.0,
    }
    assert result.new_orgs == []
    assert result.counters[("artifacts_total", NO_ORG, "failed")] == 1.0


def test_tally_minutes_add_up_per_scope_minute_counter() -> None:
    result = _tally(
        _event("claims_extracted", org_id="org-a", ts_ms=T0_MS),
        _event("claims_extracted", org_id="org-b", ts_ms=T0_MS + 59_999),
        _event("claims_extracted", org_id="org-a", ts_ms=T0_MS + 60_000),
        _event("entity_needs_disambiguation", org_id="org-a", ts_ms=T0_MS),
        _event("entity_resolution_completed", org_id="org-a", ts_ms=T0_MS),
    )
    assert result.minutes == {
        ("", T0_MS, "claims_extracted"): 2.0,
        ("org-a", T0_MS, "claims_extracted"): 1.0,
        ("org-b", T0_MS, "claims_extracted"): 1.0,
        ("", T0_MS + MINUTE, "claims_extracted"): 1.0,
        ("org-a", T0_MS + MINUTE, "claims_extracted"): 1.0,
        ("", T0_MS, "entity_resolutions_completed"): 2.0,
        ("org-a", T0_MS, "entity_resolutions_completed"): 2.0,
    }


@pytest.mark.parametrize(
    ("ts_ms", "in_window"),
    [(WINDOW_START, True), (WINDOW_START - 1, False), (T0_MS - 2 * 3_600_000, False)],
)
def test_tally_old_events_counted_but_not_windowed(ts_ms: int, in_window: bool) -> None:
    result = _tally(_event("drafts_generated", org_id="org-a", ts_ms=ts_ms))
    assert result.counters[("events_total", "drafts_generated")] == 1.0
    assert bool(result.minutes) is in_window


def test_tally_info_and_start_events_add_no_window_minutes() -> None:
    result = _tally(
        _event("artifact_status_changed", stage=None, org_id="org-a"),
        _event("transcription_started", org_id="org-a"),
        _event("circuit_breaker_opened", artifact_id=None, stage=None),
    )
    assert result.minutes == {}
    assert result.counters == {
        ("events_total", "artifact_status_changed"): 1.0,
        ("events_total", "transcription_started"): 1.0,
        ("events_total", "circuit_breaker_opened"): 1.0,
    }


# --- ai cost ---------------------------------------------------------------------------------


def test_tally_ai_cost_sums_per_org_and_window() -> None:
    result = _tally(
        _event("transcription_completed", org_id="org-a", cost=0.25),
        _event("claims_extracted", org_id="org-a", cost=0.5, ts_ms=T0_MS + 1_000),
        _event("drafts_generated", org_id="org-b", cost=0.125),
        _event("budget_exceeded", artifact_id=None, stage=None, cost=2.0),
        _event("drafts_generated", org_id="org-b", cost=0.0),
    )
    assert result.counters[("ai_cost_usd_total", "org-a")] == 0.75
    assert result.counters[("ai_cost_usd_total", "org-b")] == 0.125
    assert result.counters[("ai_cost_usd_total", NO_ORG)] == 2.0
    cost_minutes = {k: v for k, v in result.minutes.items() if k[2] == "ai_cost_usd"}
    assert cost_minutes == {
        ("", T0_MS, "ai_cost_usd"): 2.875,
        ("org-a", T0_MS, "ai_cost_usd"): 0.75,
        ("org-b", T0_MS, "ai_cost_usd"): 0.125,
    }


def test_tally_no_cost_adds_no_cost_keys() -> None:
    result = _tally(_event("artifact_received", org_id="org-a"))
    assert [k for k in result.counters if k[0] == "ai_cost_usd_total"] == []
    assert [k for k in result.minutes if k[2] == "ai_cost_usd"] == []


# --- counters ----------------------------------------------------------------------------------


def test_tally_events_total_and_last_event_maximum() -> None:
    result = _tally(
        _event("artifact_received", ts_ms=T0_MS - 5_000),
        _event("artifact_received", ts_ms=T0_MS - 1_000),
        _event("artifact_received", ts_ms=T0_MS - 9_000),
        _event("artifact_completed", ts_ms=T0_MS - 7_000),
    )
    assert result.counters[("events_total", "artifact_received")] == 3.0
    assert result.counters[("events_total", "artifact_completed")] == 1.0
    assert result.maxima == {
        ("last_event_ts", "artifact_received"): float(T0_MS - 1_000),
        ("last_event_ts", "artifact_completed"): float(T0_MS - 7_000),
    }


def test_tally_artifact_outcomes_per_org() -> None:
    result = _tally(
        _event("artifact_received", org_id="org-a"),
        _event("artifact_received"),
        _event("artifact_completed", org_id="org-a"),
        _event("artifact_failed", org_id="org-b"),
    )
    artifacts = {k: v for k, v in result.counters.items() if k[0] == "artifacts_total"}
    assert artifacts == {
        ("artifacts_total", "org-a", "received"): 1.0,
        ("artifacts_total", "", "received"): 1.0,
        ("artifacts_total", "org-a", "completed"): 1.0,
        ("artifacts_total", "org-b", "failed"): 1.0,
    }


def test_tally_stage_outcomes_keys() -> None:
    result = _tally(
        _event("transcription_completed", org_id="org-a"),
        _event("transcription_failed", org_id="org-a"),
        _event("transcription_failed", org_id="org-a"),
        _event("claims_extraction_failed"),
        _event("entity_needs_disambiguation", org_id="org-b"),
        _event("entity_resolution_completed", org_id="org-b"),
        _event("draft_generation_failed", org_id="org-b"),
        _event("transcription_started", org_id="org-a"),
        _event("draft_confirmed", org_id="org-a"),
        _event("retry_failed", stage="transcription", org_id="org-a"),
        _event("artifact_completed", org_id="org-a"),
    )
    outcomes = {k: v for k, v in result.counters.items() if k[0] == "stage_outcomes_total"}
    assert outcomes == {
        ("stage_outcomes_total", "transcription", "success", "org-a"): 1.0,
        ("stage_outcomes_total", "transcription", "failure", "org-a"): 2.0,
        ("stage_outcomes_total", "claims_extraction", "failure", ""): 1.0,
        ("stage_outcomes_total", "entity_resolution", "success", "org-b"): 2.0,
        ("stage_outcomes_total", "draft_generation", "failure", "org-b"): 1.0,
    }


def test_tally_stage_histogram_only_for_timed_successes() -> None:
    result = _tally(
        _event("transcription_completed", duration_ms=1500.0),
        _event("transcription_completed", duration_ms=250.0),
        _event("transcription_completed"),
        _event("transcription_failed", duration_ms=900.0),
        _event("drafts_generated", duration_ms=45_000.0),
    )
    histogram = {k: v for k, v in result.counters.items() if k[0].startswith("stage_duration")}
    assert histogram == {
        ("stage_duration_bucket", "transcription", "25"): 1.0,
        ("stage_duration_bucket", "transcription", "12"): 1.0,
        ("stage_duration_sum", "transcription"): 1.75,
        ("stage_duration_count", "transcription"): 2.0,
        ("stage_duration_bucket", "draft_generation", "49"): 1.0,
        ("stage_duration_sum", "draft_generation"): 45.0,
        ("stage_duration_count", "draft_generation"): 1.0,
    }


def test_tally_end_to_end_histogram_from_artifact_completed() -> None:
    result = _tally(
        _event("artifact_completed", duration_ms=90_000.0),
        _event("artifact_completed", duration_ms=7_200_001.0),
        _event("artifact_completed"),
        _event("artifact_failed", duration_ms=1_000.0),
    )
    e2e = {k: v for k, v in result.counters.items() if k[0].startswith("e2e_duration")}
    assert e2e == {
        ("e2e_duration_bucket", "33"): 1.0,
        ("e2e_duration_bucket", "64"): 1.0,
        ("e2e_duration_sum",): 7_290.001,
        ("e2e_duration_count",): 2.0,
    }


# --- organisations --------------------------------------------------------------------------


def test_tally_new_orgs_in_arrival_order_without_known_or_repeats() -> None:
    result = _tally(
        _event(org_id="org-b"),
        _event(org_id="org-known"),
        _event(org_id="org-a"),
        _event(),
        _event(org_id="org-b"),
        _event(org_id="org-c", ts_ms=WINDOW_START - MINUTE),
        known=("org-known",),
    )
    assert result.new_orgs == ["org-b", "org-a", "org-c"]


def test_tally_folds_orgs_beyond_the_caps() -> None:
    """Series cap 1, live cap 2: org-b keeps its live window but shares ``__other__`` in
    the counters; org-c (third seen) shares both."""
    result = _tally(
        _event(org_id="org-a", cost=0.5),
        _event(org_id="org-b", cost=0.25),
        _event(org_id="org-c", cost=0.125),
        _event(org_id="org-b"),
        known=("org-a",),
        live=2,
        series=1,
    )
    assert {k: v for k, v in result.counters.items() if k[0] != "events_total"} == {
        ("artifacts_total", "org-a", "received"): 1.0,
        ("artifacts_total", "__other__", "received"): 3.0,
        ("ai_cost_usd_total", "org-a"): 0.5,
        ("ai_cost_usd_total", "__other__"): 0.375,
    }
    assert result.minutes == {
        ("", T0_MS, "artifacts_received"): 4.0,
        ("", T0_MS, "ai_cost_usd"): 0.875,
        ("org-a", T0_MS, "artifacts_received"): 1.0,
        ("org-a", T0_MS, "ai_cost_usd"): 0.5,
        ("org-b", T0_MS, "artifacts_received"): 2.0,
        ("org-b", T0_MS, "ai_cost_usd"): 0.25,
        ("__other__", T0_MS, "artifacts_received"): 1.0,
        ("__other__", T0_MS, "ai_cost_usd"): 0.125,
    }
    assert result.new_orgs == ["org-b", "org-c"]


def test_tally_lists_every_unheld_org_once_the_registry_is_full() -> None:
    """A full registry cannot tell a new org from one seen beyond the cap: both are listed
    (storage ignores the known ones) and both count in ``__other__``."""
    result = _tally(
        _event(org_id="org-z"), _event(org_id="org-a"), known=("org-a",), live=1, series=1
    )
    assert result.new_orgs == ["org-z"]
    assert ("__other__", T0_MS, "artifacts_received") in result.minutes
    assert ("org-z", T0_MS, "artifacts_received") not in result.minutes


def test_tally_empty_batch_is_empty() -> None:
    assert _tally() == Tally()


def test_tally_methods_accumulate() -> None:
    result = Tally()
    result.count(("x",))
    result.count(("x",), 2.5)
    result.maximum(("m",), 3.0)
    result.maximum(("m",), 1.0)
    result.maximum(("n",), -5.0)
    result.minute("", T0_MS, "ai_cost_usd", 0.5)
    result.minute("", T0_MS, "ai_cost_usd", 0.25)
    assert result.counters == {("x",): 3.5}
    assert result.maxima == {("m",): 3.0, ("n",): -5.0}
    assert result.minutes == {("", T0_MS, "ai_cost_usd"): 0.75}


@settings(max_examples=200, deadline=None, database=None)
@given(st.floats(min_value=0, max_value=100_000, allow_nan=False))
def test_bucket_index_matches_brute_force(seconds: float) -> None:
    expected = sum(bound < seconds for bound in STAGE_BUCKETS_S)
    assert bucket_index(STAGE_BUCKETS_S, seconds) == expected
