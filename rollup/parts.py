"""Snapshot parts: the additive numbers a snapshot stores, their merge, and the fields
derived from them on read (DESIGN §6). Nothing here averages an average."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from exporter.catalog import PROCESSING_STAGES, STAGES
from rollup.digest import LatencyDigest

QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))


def ratio(numerator: float, denominator: float) -> float:
    """Safe division: 0 when the denominator is 0, never NaN or inf."""
    return numerator / denominator if denominator else 0.0


@dataclass(frozen=True, slots=True)
class StageParts:
    """One processing stage: attempts, finishes, and the latency of its successes."""

    started: int = 0
    succeeded: int = 0
    failed: int = 0
    latency: LatencyDigest = field(default_factory=LatencyDigest.empty)
    ai_cost_usd: float = 0.0

    def merge(self, other: StageParts) -> StageParts:
        return StageParts(
            self.started + other.started,
            self.succeeded + other.succeeded,
            self.failed + other.failed,
            self.latency.merge(other.latency),
            self.ai_cost_usd + other.ai_cost_usd,
        )

    @property
    def failure_rate(self) -> float:
        return ratio(self.failed, self.succeeded + self.failed)


def _no_stages() -> dict[str, StageParts]:
    return {stage: StageParts() for stage in PROCESSING_STAGES}


def _no_costs() -> dict[str, float]:
    return dict.fromkeys(STAGES, 0.0)


@dataclass(frozen=True, slots=True)
class SnapshotParts:
    """Everything one snapshot stores; all fields add under ``merge``."""

    artifacts_received: int = 0
    artifacts_completed: int = 0
    artifacts_failed: int = 0
    stages: Mapping[str, StageParts] = field(default_factory=_no_stages)
    end_to_end: LatencyDigest = field(default_factory=LatencyDigest.empty)
    transcript_confidence_count: int = 0
    transcript_confidence_sum: float = 0.0
    claim_confidence_count: int = 0
    claim_confidence_sum: float = 0.0
    entity_count_sum: int = 0
    auto_resolved_sum: int = 0
    disambiguation_sum: int = 0
    resolutions_completed: int = 0
    resolutions_needs_disambiguation: int = 0
    claim_count_sum: int = 0
    draft_count_sum: int = 0
    drafts_confirmed: int = 0
    drafts_rejected: int = 0
    retries_initiated: int = 0
    retries_succeeded: int = 0
    retries_failed: int = 0
    circuit_breaker_openings: int = 0
    budget_threshold_reached: int = 0
    budget_exceeded: int = 0
    rate_limit_hits: int = 0
    ai_cost_usd: float = 0.0
    stage_ai_cost_usd: Mapping[str, float] = field(default_factory=_no_costs)
    """AI cost of the events of each stage (all six stages; stage-less events excluded)."""

    def merge(self, other: SnapshotParts) -> SnapshotParts:
        """Exact merge: counts and sums add, digests merge. Associative and commutative."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if f.name == "stages":
                values[f.name] = {s: mine[s].merge(theirs[s]) for s in PROCESSING_STAGES}
            elif f.name == "stage_ai_cost_usd":
                values[f.name] = {s: mine[s] + theirs[s] for s in STAGES}
            elif isinstance(mine, LatencyDigest):
                values[f.name] = mine.merge(theirs)
            else:
                values[f.name] = mine + theirs
        return SnapshotParts(**values)

    @classmethod
    def merge_all(cls, parts: Iterable[SnapshotParts]) -> SnapshotParts:
        total = cls()
        for part in parts:
            total = total.merge(part)
        return total

    @property
    def is_empty(self) -> bool:
        return self == SnapshotParts()


def derived(parts: SnapshotParts) -> dict[str, float]:
    """The read-side fields of DESIGN §6, computed from parts (safe division)."""
    out: dict[str, float] = {}
    for stage, sp in parts.stages.items():
        out.update(latency_fields(f"{stage}_latency", sp.latency))
        out[f"{stage}_failure_rate"] = sp.failure_rate
    out.update(latency_fields("end_to_end_latency", parts.end_to_end))
    out["failure_rate"] = ratio(
        parts.artifacts_failed, parts.artifacts_completed + parts.artifacts_failed
    )
    out["auto_resolution_rate"] = ratio(parts.auto_resolved_sum, parts.entity_count_sum)
    out["disambiguation_rate"] = ratio(parts.disambiguation_sum, parts.entity_count_sum)
    out["transcript_confidence_avg"] = ratio(
        parts.transcript_confidence_sum, parts.transcript_confidence_count
    )
    out["claim_confidence_avg"] = ratio(parts.claim_confidence_sum, parts.claim_confidence_count)
    out["avg_cost_per_artifact_usd"] = ratio(parts.ai_cost_usd, parts.artifacts_received)
    return out


def latency_fields(prefix: str, digest: LatencyDigest) -> dict[str, float]:
    """``<prefix>_avg_ms`` and ``<prefix>_p50/p95/p99_ms`` of one digest."""
    out = {f"{prefix}_avg_ms": ratio(digest.sum, digest.count)}
    for name, q in QUANTILES:
        out[f"{prefix}_{name}_ms"] = digest.quantile(q)
    return out
