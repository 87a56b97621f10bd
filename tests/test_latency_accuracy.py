"""Issue 14 acceptance: known durations from five distributions (the pipeline-shaped
lognormals and a bimodal one) go through the daemon; Prometheus' interpolation over the
exposed buckets is within 5 % of the exact p50/p95/p99, and the window gauges and the
realtime API within 1 %."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import T0, make_event
from tests.quantiles import exact, histogram_quantile, relative_error
from tests.scrape import domain_samples, scrape

SAMPLES = 2_000
QUANTILES = {0.5: "p50", 0.95: "p95", 0.99: "p99"}
Draw = Callable[[random.Random], float]


def lognormal(median_s: float, sigma: float) -> Draw:
    return lambda rng: rng.lognormvariate(math.log(median_s), sigma)


def bimodal(rng: random.Random) -> float:
    """Four in five runs fast, one waiting on a retry or a slow model."""
    if rng.random() < 0.8:
        return rng.lognormvariate(math.log(2.0), 0.3)
    return rng.lognormvariate(math.log(30.0), 0.4)


# series -> (event type, distribution in seconds)
DISTRIBUTIONS: dict[str, tuple[str, Draw]] = {
    "transcription": ("transcription_completed", lognormal(8, 0.6)),
    "claims_extraction": ("claims_extracted", lognormal(20, 0.8)),
    "entity_resolution": ("entity_resolution_completed", lognormal(0.8, 1.0)),
    "draft_generation": ("drafts_generated", bimodal),
    "end_to_end": ("artifact_completed", lognormal(400, 0.5)),
}


def durations() -> dict[str, list[float]]:
    """Seconds per series, rounded to the millisecond the wire carries."""
    out = {}
    for series, (_, draw) in DISTRIBUTIONS.items():
        rng = random.Random(series)
        out[series] = [round(draw(rng), 3) for _ in range(SAMPLES)]
    return out


def events(values: dict[str, list[float]]) -> list[dict[str, Any]]:
    """One event per duration, spread over the last 50 minutes of event time."""
    out = []
    for series, seconds in values.items():
        event_type = DISTRIBUTIONS[series][0]
        for i, value in enumerate(seconds):
            at = T0 - timedelta(seconds=(i * 1.5) % 3000)
            out.append(
                make_event(
                    event_type=event_type,
                    artifact_id=f"{series}-{i}",
                    timestamp=at.isoformat().replace("+00:00", "Z"),
                    duration_ms=value * 1000,
                )
            )
    return out


def exposed_buckets(samples: dict[Any, float], series: str) -> list[tuple[float, float]]:
    family, labels = (
        ("voice_pipeline_end_to_end_duration_seconds_bucket", ())
        if series == "end_to_end"
        else ("voice_pipeline_stage_duration_seconds_bucket", (("stage", series),))
    )
    buckets = []
    for (name, label_set), value in samples.items():
        rest = tuple(pair for pair in label_set if pair[0] != "le")
        if name == family and rest == labels:
            buckets.append((float(dict(label_set)["le"]), value))
    return sorted(buckets)


def window_gauge(samples: dict[Any, float], series: str, percentile: str) -> float:
    if series == "end_to_end":
        key = ("voice_pipeline_end_to_end_latency_window_seconds", (("percentile", percentile),))
    else:
        name = "voice_pipeline_stage_latency_window_seconds"
        key = (name, (("percentile", percentile), ("stage", series)))
    return samples[key]


@pytest.fixture
async def fed(start_app: Any) -> tuple[Any, dict[str, list[float]]]:
    client = await start_app()
    values = durations()
    batch = events(values)
    for start in range(0, len(batch), 2_500):
        response = await client.post("/v1/events", json=batch[start : start + 2_500])
        assert (response.status, (await response.json())["accepted"]) == (200, 2_500)
    return client, values


async def test_histogram_quantile_over_exposed_buckets_within_5_percent(fed: Any) -> None:
    client, values = fed
    samples = domain_samples(await scrape(client))
    errors = {
        (series, label): relative_error(
            histogram_quantile(q, exposed_buckets(samples, series)), exact(values[series], q)
        )
        for series in DISTRIBUTIONS
        for q, label in QUANTILES.items()
    }
    assert len(errors) == 15
    assert {key: error for key, error in errors.items() if error > 0.05} == {}


async def test_window_gauges_within_1_percent(fed: Any) -> None:
    client, values = fed
    samples = domain_samples(await scrape(client))
    errors = {
        (series, label): relative_error(
            window_gauge(samples, series, label), exact(values[series], q)
        )
        for series in DISTRIBUTIONS
        for q, label in QUANTILES.items()
    }
    assert len(errors) == 15
    assert {key: error for key, error in errors.items() if error > 0.01} == {}


async def test_realtime_latency_within_1_percent(fed: Any) -> None:
    client, values = fed
    body = await (await client.get("/v1/metrics/realtime")).json()
    reported = {**body["stage_latency_1h"], "end_to_end": body["end_to_end_latency_1h"]}
    assert {series: row["count"] for series, row in reported.items()} == dict.fromkeys(
        DISTRIBUTIONS, SAMPLES
    )
    errors = {
        (series, label): relative_error(reported[series][f"{label}_s"], exact(values[series], q))
        for series in DISTRIBUTIONS
        for q, label in QUANTILES.items()
    }
    assert {key: error for key, error in errors.items() if error > 0.01} == {}


def test_histogram_quantile_helper_interpolates_as_prometheus() -> None:
    inf = math.inf
    assert histogram_quantile(0.95, [(5.0, 0), (10.0, 10), (inf, 10)]) == 9.75
    assert histogram_quantile(0.95, [(60.0, 4), (120.0, 10), (inf, 10)]) == 115.0
    assert histogram_quantile(0.5, [(1.0, 2), (2.0, 2), (inf, 10)]) == 2.0  # rank in +Inf
    assert exact([3.0, 1.0, 2.0, 4.0], 0.5) == 2.0 and exact([1.0, 2.0], 0.51) == 2.0
