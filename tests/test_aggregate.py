"""Pure hourly aggregation: SQL-bucketed latency groups become the same digests the Python
builder makes of the durations, per org and for the platform (every org plus no-org)."""

from __future__ import annotations

from itertools import permutations

from exporter.records import GroupRow, LatencyGroup
from rollup.aggregate import build_parts
from rollup.codec import encode_parts
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


def test_aggregate_adds_floats_in_one_order_whatever_order_the_rows_come_in() -> None:
    """The SQL returns its groups in no defined order (PostgreSQL's hash aggregation changes
    it when the statistics change); the platform's float sums must not follow it, or
    re-running an hour stores different bytes. 0.1 + 0.2 + 0.3 differs with the order."""
    costs = [0.1, 0.2, 0.3, 1e-17, 0.7]
    groups = [
        GroupRow(f"org-{i}", "transcription_completed", "transcription", 1, cost, 1, cost,
                 0, 0, 0, 0, 0)
        for i, cost in enumerate(costs)
    ]  # fmt: skip
    latencies = [latency(f"org-{i}", "artifact_completed", [cost * 1e3]) for i, cost in
                 enumerate(costs)]  # fmt: skip
    stored = {
        encode_parts(build_parts([groups[i] for i in order], [latencies[i] for i in order])[""])
        for order in list(permutations(range(len(costs))))[::7]
    }
    assert len(stored) == 1
    platform = build_parts(groups, latencies)[""]
    assert platform.ai_cost_usd == ((((0.1 + 0.2) + 0.3) + 1e-17) + 0.7)  # org order
