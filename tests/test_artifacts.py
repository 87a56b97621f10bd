"""The artifact state fold (pure) and its retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from exporter.artifacts import COMPLETED, FAILED, IN_FLIGHT, ArtifactState, fold
from exporter.live.inflight import InflightIndex
from exporter.model import Event
from exporter.timestamps import datetime_to_ms
from rollup import cleanup, jobs
from rollup.windows import Retention
from tests.tools import open_store

T = datetime_to_ms(datetime(2026, 11, 28, 10, tzinfo=UTC))


def ev(event_type: str, minute: int, stage: str | None = None, **kw: object) -> Event:
    from exporter.catalog import EVENT_TYPES

    return Event(
        f"{event_type}-{minute}", event_type, T + minute * 60_000, artifact_id="n1",
        stage=stage or EVENT_TYPES[event_type].stage, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def final(*events: Event) -> ArtifactState:
    return fold({}, events)["n1"]


@pytest.mark.parametrize(
    ("events", "status", "stage", "failed_stage", "error", "awaiting"),
    [
        ([ev("artifact_received", 0)], IN_FLIGHT, "ingestion", None, None, False),
        (
            [ev("artifact_received", 0), ev("claims_extraction_failed", 3, error_code="E_LLM")],
            FAILED, "claims_extraction", "claims_extraction", "E_LLM", False,
        ),
        (
            [ev("claims_extraction_failed", 3, error_code="E"), ev("retry_initiated", 4),
             ev("claims_extraction_started", 5)],
            IN_FLIGHT, "claims_extraction", "claims_extraction", "E", False,
        ),
        (
            [ev("transcription_started", 1), ev("artifact_failed", 2, error_code="E_X")],
            FAILED, "transcription", "transcription", "E_X", False,
        ),
        (
            [ev("entity_needs_disambiguation", 4)],
            IN_FLIGHT, "entity_resolution", None, None, True,
        ),
        (
            [ev("entity_needs_disambiguation", 4), ev("draft_generation_started", 6)],
            IN_FLIGHT, "draft_generation", None, None, False,
        ),
        (
            [ev("artifact_received", 0), ev("artifact_completed", 9), ev("draft_confirmed", 8)],
            COMPLETED, "confirmation", None, None, False,
        ),
        (  # a late artifact_completed still closes the note
            [ev("transcription_started", 5), ev("artifact_completed", 4)],
            COMPLETED, "transcription", None, None, False,
        ),
    ],
)  # fmt: skip
def test_artifacts_fold(
    events: list[Event],
    status: str,
    stage: str | None,
    failed_stage: str | None,
    error: str | None,
    awaiting: bool,
) -> None:
    state = final(*events)
    got = (state.status, state.current_stage, state.failed_stage, state.error_code)
    assert got == (status, stage, failed_stage, error)
    assert state.awaiting_disambiguation is awaiting


def test_artifacts_fold_orders_by_event_time_and_keeps_first_seen() -> None:
    state = final(ev("transcription_started", 5), ev("artifact_received", 1))
    assert (state.first_event_ms, state.last_event_ms) == (T + 60_000, T + 300_000)
    assert state.last_event_type == "transcription_started"


def test_artifacts_inflight_index_counts() -> None:
    index = InflightIndex()
    index.apply([final(ev("transcription_started", 0))])
    index.apply([ArtifactState("n2", None, IN_FLIGHT, "ingestion", "artifact_received",
                               T + 600_000, T, awaiting_disambiguation=True)])  # fmt: skip
    assert index.by_stage() == {"transcription": 1, "ingestion": 1}
    assert index.stuck(T + 1) == 1
    assert index.awaiting_disambiguation() == 1
    index.apply([final(ev("transcription_started", 0), ev("artifact_completed", 1))])
    assert index.by_stage() == {"ingestion": 1}
    index.prune(T + 600_001)
    assert index.by_stage() == {}
    assert index.awaiting_disambiguation() == 0 and len(index) == 0


def test_artifacts_inflight_index_keeps_counts_exact_through_every_transition() -> None:
    """The packed entries and the counts kept beside them agree with a recount at each
    step: a note moving stage, losing its awaiting flag, leaving and coming back; times
    before 1970 (negative ms) and the exact stuck boundary."""
    index = InflightIndex()
    reference: dict[str, tuple[str, int, bool]] = {}

    def put(note: str, stage: str | None, last_ms: int, awaiting: bool, status: str) -> None:
        index.apply([ArtifactState(note, None, status, stage, "x", last_ms, last_ms,
                                   awaiting_disambiguation=awaiting)])  # fmt: skip
        if status == IN_FLIGHT:
            reference[note] = (stage or "", last_ms, awaiting)
        else:
            reference.pop(note, None)
        counts: dict[str, int] = {}
        for name, _, _ in reference.values():
            counts[name] = counts.get(name, 0) + 1
        assert index.by_stage() == counts
        assert index.awaiting_disambiguation() == sum(a for _, _, a in reference.values())
        for before in (-86_400_001, -86_400_000, 0, 5, 6, 10**13):
            assert index.stuck(before) == sum(ms < before for _, ms, _ in reference.values())

    put("a", "transcription", 5, True, IN_FLIGHT)
    put("b", None, -86_400_000, False, IN_FLIGHT)  # 1969-12-31, no stage yet
    put("a", "entity_resolution", 6, False, IN_FLIGHT)
    put("a", "entity_resolution", 6, False, COMPLETED)
    put("a", "drafts", 10**13 - 1, True, IN_FLIGHT)
    put("b", None, -86_400_000, False, FAILED)
    assert len(index) == 1


def test_artifacts_pruned_with_event_retention(tmp_path: Path) -> None:
    conn = open_store(tmp_path / "voxmon.db")
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    cutoff = datetime_to_ms(now - timedelta(hours=48))
    states = [
        ArtifactState("old", None, IN_FLIGHT, "ingestion", "artifact_received", cutoff - 1,
                      cutoff - 1),
        ArtifactState("edge", None, IN_FLIGHT, "ingestion", "artifact_received", cutoff, cutoff),
    ]  # fmt: skip
    conn.write(lambda c: c.artifacts.save_states(states))
    outcome = cleanup.cleanup_events(conn, jobs.direct_write(conn), now, Retention())
    assert outcome.deleted == {"events": 0, "artifacts": 1}
    assert [r[0] for r in conn.connection.execute("SELECT artifact_id FROM artifacts")] == ["edge"]
    conn.close()


def test_artifacts_inflight_index_restore_equals_one_by_one() -> None:
    """The bulk path of a restore (an empty index) keeps the same counts as notes added one
    at a time, a note listed twice counted once."""
    rows = [(f"n{k}", ("transcription", None, "drafts")[k % 3], 1_000 + k, k % 4 == 0)
            for k in range(40)] + [("n1", "drafts", 7, True)]  # fmt: skip
    bulk, single = InflightIndex(), InflightIndex()
    bulk.load(rows)
    for row in rows:
        single.put(*row)
    assert len(bulk) == len(single) == 40
    assert bulk.by_stage() == single.by_stage() == {"transcription": 14, "": 12, "drafts": 14}
    assert bulk.awaiting_disambiguation() == single.awaiting_disambiguation() == 11
    assert [bulk.stuck(t) for t in (8, 1_020, 2_000)] == [
        single.stuck(t) for t in (8, 1_020, 2_000)
    ]
    assert bulk.stuck(8) == 1
