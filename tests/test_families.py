"""The live metric families table: the one declaration the tally, the persisted state and
the collector share, and the self metrics declared on ``SelfMetrics``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from exporter.live.collector import LiveOrgsCollector, PipelineCollector
from exporter.live.families import (
    ARTIFACTS,
    FAMILIES,
    ORG_POSITIONS,
    STAGE_DURATION,
    WINDOW_EVENTS,
)
from exporter.live.orgs import OrgRegistry
from exporter.live.state import LiveState
from exporter.live.tally import tally
from exporter.model import Event, Metadata
from exporter.selfmetrics import SelfMetrics
from exporter.timestamps import datetime_to_ms
from rollup.live_latency import LatencyWindows
from tests.tools import FakeClock

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
T0_MS = datetime_to_ms(T0)


def test_persisted_stems_are_the_ones_storage_already_holds() -> None:
    """Stems are keys in ``live_counters``/``live_maxima``: renaming one would orphan the
    totals every existing database carries."""
    stems = {f.stem for f in FAMILIES if f.stem is not None}
    assert stems == {
        "events_total", "artifacts_total", "stage_outcomes_total", "ai_cost_usd_total",
        "stage_duration", "e2e_duration", "last_event_ts",
    }  # fmt: skip


def test_org_positions_come_from_the_org_id_label() -> None:
    assert ORG_POSITIONS == {
        "artifacts_total": 1,
        "stage_outcomes_total": 3,
        "ai_cost_usd_total": 1,
    }
    assert ARTIFACTS.series("org-a", "received") == ("artifacts_total", "org-a", "received")
    assert STAGE_DURATION.bucket_key(("transcription",), 4) == (
        "stage_duration_bucket", "transcription", "4",
    )  # fmt: skip


def test_a_family_computed_at_scrape_time_has_no_persisted_series() -> None:
    with pytest.raises(ValueError, match="voice_pipeline_window_events is not persisted"):
        WINDOW_EVENTS.series("artifacts_received", "")


def _events() -> list[Event]:
    return [
        Event("e1", "artifact_received", T0_MS, "n1", org_id="org-a", stage="ingestion"),
        Event("e2", "transcription_completed", T0_MS, "n1", org_id="org-a",
              stage="transcription", duration_ms=1500.0, metadata=Metadata(ai_cost_usd=0.5)),
        Event("e3", "artifact_completed", T0_MS, "n1", org_id="org-a", duration_ms=9000.0),
        Event("e4", "transcription_failed", T0_MS, "n2", stage="transcription"),
    ]  # fmt: skip


def test_every_tallied_series_belongs_to_a_declared_family() -> None:
    result = tally(_events(), T0_MS - 3_600_000, OrgRegistry(10, 10))
    stems = {f.stem for f in FAMILIES if f.stem is not None}
    suffixes = ("", "_bucket", "_sum", "_count")
    undeclared = [
        key for key in [*result.counters, *result.maxima]
        if not any(key[0] == stem + suffix for stem in stems for suffix in suffixes)
    ]  # fmt: skip
    assert undeclared == []
    # 4 event types, 2 artifact outcomes, 1 cost, 2 stage outcomes, 2 histograms x 3
    assert len(result.counters) == 15


def test_collectors_expose_exactly_the_declared_families() -> None:
    """Name, type, help and label names of every family a scrape yields, against the
    table; the tallied families carry samples, so their labels are checked too."""
    live = LiveState(max_org_series=10, max_live_orgs=10, latency=LatencyWindows())
    live.apply(tally(_events(), T0_MS - 3_600_000, live.orgs), T0_MS)
    clock = FakeClock(T0)
    metrics = [*PipelineCollector(live, clock).collect(),
               *LiveOrgsCollector(live).collect()]  # fmt: skip
    assert [(m.name, m.type, m.documentation) for m in metrics] == [
        (f.name, f.kind, f.help) for f in FAMILIES
    ]
    declared = {f.name: set(f.labels) for f in FAMILIES}
    for metric in metrics:
        for sample in metric.samples:
            assert set(sample.labels) - {"le"} == declared[metric.name], sample


def test_self_metrics_register_every_declared_metric() -> None:
    registry = CollectorRegistry()
    metrics = SelfMetrics.register(registry)
    metrics.requests.labels("200").inc()
    names = {m.name: (m.type, m.documentation) for m in registry.collect()}
    assert len(names) == 16
    assert names["voxmon_ingest_requests"] == ("counter", "Ingest HTTP requests by status code.")
    assert names["voxmon_commit_duration_seconds"] == (
        "histogram", "Duration of one group commit.",
    )  # fmt: skip
    assert names["voxmon_commit_wait_seconds"][0] == "counter"
    assert registry.get_sample_value("voxmon_ingest_requests_total", {"code": "200"}) == 1.0
