"""The stage helper against a real voxmon (started, then success or failure with the
duration on the client's clock), and the client's copy of the stage events against the
daemon's catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from voxmon_client import AsyncEmitter
from voxmon_client.stage import STAGE_EVENTS

from exporter.catalog import DISAMBIGUATION_TYPE, EVENT_TYPES, PROCESSING_STAGES, Kind
from tests.conftest import T0_MS
from tests.tools import FakeClock, stored


def test_stage_events_match_the_daemons_catalog() -> None:
    """The client cannot import the catalog, so its copy is checked here: same stages in
    the same order, each with its started, first success and failure type."""
    by_kind = {
        (t.stage, t.kind): t.name
        for t in reversed(EVENT_TYPES.values())  # the first success of a stage wins
    }
    expected = {
        stage: (by_kind[stage, Kind.START], by_kind[stage, Kind.SUCCESS],
                by_kind[stage, Kind.FAILURE])
        for stage in PROCESSING_STAGES
    }  # fmt: skip
    got = {s: (e.started, e.success, e.failure) for s, e in STAGE_EVENTS.items()}
    assert list(got) == list(PROCESSING_STAGES)
    assert got == expected
    assert got["entity_resolution"][1] == "entity_resolution_completed"


async def test_stage_helper_emits_started_then_success_or_failure(
    start_app: Any, clock: FakeClock, tmp_path: Path
) -> None:
    client = await start_app()
    url = str(client.server.make_url(""))
    async with AsyncEmitter(url, clock=clock) as emitter:
        with emitter.stage("art-1", "transcription", org_id="org-a") as s:
            clock.advance(1.5)
            s.metadata["confidence"] = 0.9
        failing = emitter.stage("art-1", "claims_extraction", org_id="org-a")
        with pytest.raises(ValueError, match="no claims"), failing:
            clock.advance(0.25)
            raise ValueError("no claims")
        with emitter.stage("art-2", "entity_resolution", metadata={"entity_count": 3}) as s:
            clock.advance(0.125)
            s.metadata["disambiguation_count"] = 1
            s.success_type = DISAMBIGUATION_TYPE
        assert await emitter.flush(10)
    rows = stored(tmp_path / "voxmon.db")
    seen = [(r[2], r[3] - T0_MS, r[5], r[6], r[10], r[14], r[15], r[23]) for r in rows]
    assert seen == [
        ("transcription_started", 0, "art-1", "org-a", None, None, None, None),
        ("transcription_completed", 1500, "art-1", "org-a", 1500.0, None, None,
         '{"confidence":0.9}'),
        ("claims_extraction_started", 1500, "art-1", "org-a", None, None, None, None),
        ("claims_extraction_failed", 1750, "art-1", "org-a", 250.0, "ValueError", "no claims",
         None),
        ("entity_resolution_started", 1750, "art-2", None, None, None, None, None),
        ("entity_needs_disambiguation", 1875, "art-2", None, 125.0, None, None,
         '{"entity_count":3,"disambiguation_count":1}'),
    ]  # fmt: skip
    assert emitter.stats().accepted == 6


async def test_stage_helper_with_an_unknown_stage_emits_nothing_and_still_raises(
    start_app: Any, clock: FakeClock
) -> None:
    client = await start_app()
    async with AsyncEmitter(str(client.server.make_url("")), clock=clock) as emitter:
        with pytest.raises(KeyError), emitter.stage("art-1", "transcribing"):
            raise KeyError("x")
        assert emitter.stats().emitted == 0
