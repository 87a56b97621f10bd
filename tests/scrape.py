"""Reading a live ``/metrics`` body in tests."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Sample = tuple[str, tuple[tuple[str, str], ...]]


async def scrape(client: Any, **headers: str) -> str:
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200
    text: str = await response.text()
    return text


def samples(text: str, prefix: str = "") -> dict[Sample, float]:
    """Every sample of the exposition whose name starts with ``prefix``."""
    found: dict[Sample, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith(prefix):
                found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def domain_samples(text: str) -> dict[Sample, float]:
    """The ``voice_pipeline_*`` samples (the persisted domain metrics)."""
    return samples(text, "voice_pipeline_")
