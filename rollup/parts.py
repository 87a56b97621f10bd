"""Snapshot parts: the additive numbers a snapshot stores, their merge, and the fields
derived from them on read (how-it-works.md). Nothing here averages an average."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

import msgspec

from exporter.catalog import PROCESSING_STAGES, STAGES
from rollup.digest import LatencyDigest
from rollup.digest import merge_all as merge_digests

QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))


def ratio(numerator: float, denominator: float) -> float:
    """Safe division: 0 when the denominator is 0, never NaN or inf."""
    return numerator / denominator if denominator else 0.0


class StageParts(msgspec.Struct, frozen=True, array_like=True):
    """One processing stage: attempts, finishes, and the latency of its successes."""

    started: int = 0
    succeeded: int = 0
    failed: int = 0
    latency: LatencyDigest = msgspec.field(default_factory=LatencyDigest.empty)
    ai_cost_usd: float = 0.0

    def merge(self, other: StageParts) -> StageParts:
        return StageParts.merge_all((self, other))

    @classmethod
    def merge_all(cls, parts: Iterable[StageParts]) -> StageParts:
        items = list(parts)
        return cls(
            sum(p.started for p in items),
            sum(p.succeeded for p in items),
            sum(p.failed for p in items),
            merge_digests(p.latency for p in items),
            sum(p.ai_cost_usd for p in items),
        )

    @property
    def failure_rate(self) -> float:
        return ratio(self.failed, self.succeeded + self.failed)


def _no_stages() -> dict[str, StageParts]:
    return {stage: StageParts() for stage in PROCESSING_STAGES}


def _no_costs() -> dict[str, float]:
    return dict.fromkeys(STAGES, 0.0)


class SnapshotParts(msgspec.Struct, frozen=True):
    """Everything one snapshot stores; all fields add under ``merge``. A msgspec Struct so
    the stored bytes decode natively (field names are kept, so old rows stay readable)."""

    artifacts_received: int = 0
    artifacts_completed: int = 0
    artifacts_failed: int = 0
    stages: dict[str, StageParts] = msgspec.field(default_factory=_no_stages)
    end_to_end: LatencyDigest = msgspec.field(default_factory=LatencyDigest.empty)
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
    stage_ai_cost_usd: dict[str, float] = msgspec.field(default_factory=_no_costs)
    """AI cost of the events of each stage (all six stages; stage-less events excluded)."""

    def merge(self, other: SnapshotParts) -> SnapshotParts:
        """Exact merge: counts and sums add, digests merge. Associative and commutative."""
        return SnapshotParts.merge_all((self, other))

    @classmethod
    def merge_all(cls, parts: Iterable[SnapshotParts]) -> SnapshotParts:
        """Merge many snapshots in one pass per field (a day of hours, a range of days)."""
        items = list(parts)
        if not items:
            return cls()
        values: dict[str, Any] = {name: sum(getattr(p, name) for p in items) for name in ADDITIVE}
        values["stages"] = {
            stage: StageParts.merge_all([p.stages[stage] for p in items])
            for stage in PROCESSING_STAGES
        }
        values["end_to_end"] = merge_digests(p.end_to_end for p in items)
        values["stage_ai_cost_usd"] = {
            stage: sum(p.stage_ai_cost_usd[stage] for p in items) for stage in STAGES
        }
        return cls(**values)

    @property
    def is_empty(self) -> bool:
        return self == SnapshotParts()


ADDITIVE = tuple(
    name
    for name in SnapshotParts.__struct_fields__
    if name not in ("stages", "end_to_end", "stage_ai_cost_usd")
)


def derived(parts: Any, quantiles: Quantiles | None = None) -> dict[str, float]:
    """The read-side fields of how-it-works.md, computed from parts (safe division): of a
    ``SnapshotParts`` or its stored form (``rollup.codec``), whose digests have the same
    ``count``, ``sum`` and ``quantiles``; ``quantiles`` gives a digest's p50, p95 and p99
    when they were computed already (for many rows in one batch)."""
    out: dict[str, float] = {}
    for stage, sp in parts.stages.items():
        out.update(latency_fields(f"{stage}_latency", sp.latency, quantiles))
        out[f"{stage}_failure_rate"] = ratio(sp.failed, sp.succeeded + sp.failed)
    out.update(latency_fields("end_to_end_latency", parts.end_to_end, quantiles))
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


class Digest(Protocol):
    """What the read side needs of a digest: ``LatencyDigest`` and ``PackedDigest`` alike."""

    @property
    def count(self) -> int: ...
    @property
    def sum(self) -> float: ...
    def quantiles(self, qs: Iterable[float]) -> list[float]: ...


Quantiles = Callable[[Any], list[float]]
"""A digest -> its ``QUANTILES`` values, in order."""


def latency_fields(
    prefix: str, digest: Digest, quantiles: Quantiles | None = None
) -> dict[str, float]:
    """``<prefix>_avg_ms`` and ``<prefix>_p50/p95/p99_ms`` of one digest."""
    out = {f"{prefix}_avg_ms": ratio(digest.sum, digest.count)}
    values = quantiles(digest) if quantiles else digest.quantiles(q for _, q in QUANTILES)
    for (name, _), value in zip(QUANTILES, values, strict=True):
        out[f"{prefix}_{name}_ms"] = value
    return out


BASELINE_MIN_HOURS = 6


def latency_baseline(hours: Iterable[SnapshotParts]) -> dict[str, float]:
    """Per processing stage, the p95 (seconds) over the given hourly snapshots, for stages
    with latency samples in at least ``BASELINE_MIN_HOURS`` of them; others are absent."""
    items = list(hours)
    baseline = {}
    for stage in PROCESSING_STAGES:
        digests = [p.stages[stage].latency for p in items]
        if sum(1 for d in digests if d.count) >= BASELINE_MIN_HOURS:
            baseline[stage] = merge_digests(digests).quantile(0.95) / 1000.0
    return baseline
