"""``/metrics`` from a live app: the org series cap, OpenMetrics negotiation, promtool lint."""

from __future__ import annotations

import subprocess
from collections import defaultdict
from typing import Any

from tests.conftest import make_event
from tests.scrape import Sample, domain_samples, scrape
from tests.tools import require

ORGS = ["org-1", "org-2", "org-3", "org-4", "org-5"]


def org_batch() -> list[dict[str, Any]]:
    events = []
    for n, org in enumerate(ORGS, start=1):
        for i in range(n):  # org-k gets k of each, so every org's numbers differ
            common = {"org_id": org, "artifact_id": f"{org}-{i}"}
            events += [
                make_event(event_type="artifact_received", **common),
                make_event(
                    event_type="artifact_completed", metadata={"ai_cost_usd": 0.5}, **common
                ),
                make_event(event_type="transcription_completed", duration_ms=1500, **common),
                make_event(event_type="claims_extraction_failed", **common),
            ]
    events.append(make_event(event_type="artifact_received", org_id=None))
    return events


def summed_over_org(samples: dict[Sample, float], name: str) -> dict[tuple[Any, ...], float]:
    totals: dict[tuple[Any, ...], float] = defaultdict(float)
    for (sample, labels), value in samples.items():
        if sample == name:
            totals[tuple((k, v) for k, v in labels if k != "org_id")] += value
    return dict(totals)


async def test_org_cap_keeps_first_orgs_and_sums_the_rest(start_app: Any) -> None:
    client = await start_app(max_org_series=3)
    for org in ORGS:  # arrival order decides which orgs keep a series
        await client.post("/v1/events", json=[make_event(org_id=org, event_type="retry_failed")])
    response = await client.post("/v1/events", json=org_batch())
    assert (await response.json())["accepted"] == 61
    samples = domain_samples(await scrape(client))

    received = {
        dict(labels)["org_id"]: value
        for (name, labels), value in samples.items()
        if name == "voice_pipeline_artifacts_total" and ("outcome", "received") in labels
    }
    assert received == {"": 1.0, "org-1": 1.0, "org-2": 2.0, "org-3": 3.0, "__other__": 9.0}
    assert summed_over_org(samples, "voice_pipeline_artifacts_total") == {
        (("outcome", "completed"),): 15.0,
        (("outcome", "received"),): 16.0,
    }
    assert summed_over_org(samples, "voice_pipeline_ai_cost_usd_total") == {(): 7.5}
    assert summed_over_org(samples, "voice_pipeline_stage_outcomes_total") == {
        (("outcome", "success"), ("stage", "transcription")): 15.0,
        (("outcome", "failure"), ("stage", "claims_extraction")): 15.0,
    }
    window = {
        dict(labels)["org_id"]: value
        for (name, labels), value in samples.items()
        if name == "voice_pipeline_window_events" and ("counter", "artifacts_completed") in labels
    }
    assert window == {"": 15.0, "org-1": 1.0, "org-2": 2.0, "org-3": 3.0, "__other__": 9.0}
    assert sum(v for k, v in window.items() if k) == window[""]


async def test_metrics_histogram_and_event_counts(start_app: Any) -> None:
    client = await start_app()
    await client.post("/v1/events", json=org_batch())
    samples = domain_samples(await scrape(client))
    stage = (("stage", "transcription"),)
    assert samples[("voice_pipeline_stage_duration_seconds_count", stage)] == 15.0
    assert samples[("voice_pipeline_stage_duration_seconds_sum", stage)] == 22.5
    assert samples[("voice_pipeline_stage_duration_seconds_bucket", (("le", "1.431"), *stage))] == 0
    assert (
        samples[("voice_pipeline_stage_duration_seconds_bucket", (("le", "1.646"), *stage))] == 15
    )
    window = {
        (name, dict(labels).get("stage"), dict(labels)["percentile"]): value
        for (name, labels), value in samples.items()
        if "latency_window" in name
    }
    # every run took 1.5 s (the digest clamps to its exact min and max); each note completes
    # at its receipt time, so end to end is 0 s
    assert window == {
        ("voice_pipeline_stage_latency_window_seconds", "transcription", "p50"): 1.5,
        ("voice_pipeline_stage_latency_window_seconds", "transcription", "p95"): 1.5,
        ("voice_pipeline_stage_latency_window_seconds", "transcription", "p99"): 1.5,
        ("voice_pipeline_end_to_end_latency_window_seconds", None, "p50"): 0.0,
        ("voice_pipeline_end_to_end_latency_window_seconds", None, "p95"): 0.0,
        ("voice_pipeline_end_to_end_latency_window_seconds", None, "p99"): 0.0,
    }
    events = {
        dict(labels)["event_type"]: value
        for (name, labels), value in samples.items()
        if name == "voice_pipeline_events_total"
    }
    assert events == {
        "artifact_received": 16.0,
        "artifact_completed": 15.0,
        "transcription_completed": 15.0,
        "claims_extraction_failed": 15.0,
    }
    last = ("voice_pipeline_last_event_timestamp_seconds", (("event_type", "artifact_received"),))
    assert samples[last] == 1795860000.0  # 2026-11-28T10:00:00Z
    assert samples[("voice_pipeline_circuit_breaker_open", ())] == 0.0


async def test_metrics_openmetrics_negotiation(start_app: Any) -> None:
    client = await start_app()
    await client.post("/v1/events", json=[make_event()])
    accept = "application/openmetrics-text; version=1.0.0"
    response = await client.get("/metrics", headers={"Accept": accept})
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    text = await response.text()
    assert text.endswith("# EOF\n")
    assert 'voice_pipeline_events_total{event_type="artifact_received"} 1.0' in text
    plain = await client.get("/metrics")
    assert plain.headers["Content-Type"].startswith("text/plain")


def promtool() -> str:
    return require("promtool")


async def test_metrics_pass_promtool_check(start_app: Any) -> None:
    tool = promtool()
    client = await start_app(max_org_series=3)
    await client.post("/v1/events", json=org_batch())
    await client.post("/v1/events", json=[{"event_id": "bad"}])
    text = await scrape(client)
    assert "voxmon_ingest_rejected_total" in text
    result = subprocess.run(
        [tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
