"""Pure hourly aggregation: SQL-bucketed latency groups become the same digests the Python
builder makes of the durations, per org and for the platform (every org plus no-org)."""

from __future__ import annotations

from exporter.records import GroupRow, LatencyGroup
from rollup.aggregate import build_parts
from rollup.digest import LatencyDigest, bucket_index


def latency(org: str | None, event_type: str, durations: list[float]) -> LatencyGroup:
    """The group the hourly SQL returns for these durations of one (org, type)."""
    buckets: dict[int, int] = {}
    for d in durations:
        if d > 0:
            buckets[bucket_index(d)] = buckets.get(bucket_index(d), 0) + 1
    return LatencyGroup(
        org, event_type, len(durations), sum(durations), min(durations), max(durations),
        durations.count(0.0), buckets,
    )  # fmt: skip


def completed(org: str | None, count: int) -> GroupRow:
    return GroupRow(org, "artifact_completed", None, count, 0.0, 0, 0.0, 0, 0, 0, 0, 0)


def test_aggregate_platform_digest_adds_every_orgs_buckets() -> None:
    parts = build_parts(
        [completed("org-a", 2), completed("org-b", 1), completed(None, 1)],
        [
            latency("org-a", "artifact_completed", [10.0, 20.0]),
            latency("org-b", "artifact_completed", [20.0]),
            latency(None, "artifact_completed", [0.0]),
        ],
    )
    assert sorted(parts) == ["", "org-a", "org-b"]
    assert parts[""].end_to_end == LatencyDigest.of([10.0, 20.0, 20.0, 0.0])
    assert parts["org-a"].end_to_end == LatencyDigest.of([10.0, 20.0])
    assert parts["org-b"].end_to_end == LatencyDigest.of([20.0])
    assert parts[""].artifacts_completed == 4


def test_aggregate_two_event_types_of_one_stage_share_its_digest() -> None:
    parts = build_parts(
        [],
        [
            latency("org-a", "entity_resolution_completed", [5.0]),
            latency("org-a", "entity_needs_disambiguation", [5.0, 7.0]),
        ],
    )
    expected = LatencyDigest.of([5.0, 5.0, 7.0])
    assert parts["org-a"].stages["entity_resolution"].latency == expected
    assert parts[""].stages["entity_resolution"].latency == expected
    assert parts[""].stages["transcription"].latency == LatencyDigest.empty()
