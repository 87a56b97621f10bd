"""Pure aggregation: SQL group rows of one window into ``SnapshotParts`` per scope.

Every event feeds the platform scope (``""``) and, when it has one, its organisation's; the
platform is built from the same rows, so it is exactly the sum of its orgs plus no-org events.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from exporter.catalog import (
    EVENT_TYPES,
    PROCESSING_STAGES,
    SNAPSHOT_COUNTER_OF_TYPE,
    SNAPSHOT_METADATA_SUMS,
    Kind,
)
from exporter.records import GroupRow, LatencyGroup
from rollup.digest import LatencyDigest
from rollup.parts import SnapshotParts, StageParts

PLATFORM = ""

_ARTIFACT_PART = {
    Kind.ARTIFACT_START: "artifacts_received",
    Kind.ARTIFACT_SUCCESS: "artifacts_completed",
    Kind.ARTIFACT_FAILURE: "artifacts_failed",
}
_STAGE_PART = {Kind.START: "started", Kind.SUCCESS: "succeeded", Kind.FAILURE: "failed"}
_GROUP_SUMS = {
    "entity_count": "entity_count",
    "auto_resolved_count": "auto_resolved_count",
    "disambiguation_count": "disambiguation_count",
    "claim_count": "claim_count",
    "draft_count": "draft_count",
}


@dataclass(slots=True)
class _Scope:
    """Mutable accumulator for one scope, frozen into ``SnapshotParts`` at the end."""

    counts: dict[str, Any] = field(default_factory=lambda: defaultdict(int))
    stages: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {s: defaultdict(int) for s in PROCESSING_STAGES}
    )
    stage_costs: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    latency: dict[str, list[LatencyGroup]] = field(default_factory=lambda: defaultdict(list))


def build_parts(
    groups: Iterable[GroupRow], latencies: Iterable[LatencyGroup]
) -> dict[str, SnapshotParts]:
    """Parts per scope for one window: ``""`` (always present) and each org with events.
    The rows are taken in key order, not in the order the SQL returned them (none is
    defined), so the float sums come out the same however the database ran the query."""
    scopes: dict[str, _Scope] = defaultdict(_Scope)
    scopes[PLATFORM]  # the platform row exists even for a quiet window
    for row in sorted(groups, key=lambda g: (*_order(g.org_id), g.event_type, g.stage or "")):
        for key in _keys(row.org_id):
            _add_group(scopes[key], row)
    for lat in sorted(latencies, key=lambda g: (*_order(g.org_id), g.event_type)):
        stage = EVENT_TYPES[lat.event_type].stage
        target = "end_to_end" if stage is None else stage
        for key in _keys(lat.org_id):
            scopes[key].latency[target].append(lat)
    return {key: _freeze(acc) for key, acc in scopes.items()}


def _order(org_id: str | None) -> tuple[bool, str]:
    return org_id is not None, org_id or ""


def _keys(org_id: str | None) -> tuple[str, ...]:
    return (PLATFORM, org_id) if org_id else (PLATFORM,)


def _add_group(acc: _Scope, row: GroupRow) -> None:
    event_type = EVENT_TYPES[row.event_type]
    counts = acc.counts
    counts["ai_cost_usd"] += row.ai_cost_usd
    if row.stage:
        acc.stage_costs[row.stage] += row.ai_cost_usd
    if part := _ARTIFACT_PART.get(event_type.kind):
        counts[part] += row.count
    if (part := _STAGE_PART.get(event_type.kind)) and row.stage in acc.stages:
        acc.stages[row.stage][part] += row.count
    if part := SNAPSHOT_COUNTER_OF_TYPE.get(row.event_type):
        counts[part] += row.count
    for key, part in SNAPSHOT_METADATA_SUMS.get(row.event_type, {}).items():
        if key == "confidence":
            counts[f"{part}_count"] += row.confidence_count
            counts[f"{part}_sum"] += row.confidence_sum
        else:
            counts[part] += getattr(row, _GROUP_SUMS[key])


def _freeze(acc: _Scope) -> SnapshotParts:
    stages = {
        stage: StageParts(
            started=values["started"],
            succeeded=values["succeeded"],
            failed=values["failed"],
            latency=_digest(acc.latency.get(stage, ())),
            ai_cost_usd=acc.stage_costs.get(stage, 0.0),
        )
        for stage, values in acc.stages.items()
    }
    base = SnapshotParts()
    costs = {stage: acc.stage_costs.get(stage, 0.0) for stage in base.stage_ai_cost_usd}
    return SnapshotParts(
        **dict(acc.counts),
        stages=stages,
        end_to_end=_digest(acc.latency.get("end_to_end", ())),
        stage_ai_cost_usd=costs,
    )


def _digest(groups: Sequence[LatencyGroup]) -> LatencyDigest:
    """Digest of one scope and target from its SQL-bucketed groups (an org's: usually one;
    the platform's: one per org), buckets added exactly."""
    if not groups:
        return LatencyDigest.empty()
    return LatencyDigest.from_buckets(
        count=sum(g.count for g in groups),
        sum=sum(g.sum_ms for g in groups),
        min=min(g.min_ms for g in groups),
        max=max(g.max_ms for g in groups),
        zero_count=sum(g.zero_count for g in groups),
        buckets=groups[0].buckets if len(groups) == 1 else _added(groups),
    )


def _added(groups: Iterable[LatencyGroup]) -> dict[int, int]:
    buckets: dict[int, int] = defaultdict(int)
    for group in groups:
        for index, count in group.buckets.items():
            buckets[index] += count
    return buckets
