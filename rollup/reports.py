"""Read-side reports built from snapshot rows: history, stage and organisation breakdowns.
Ranges merge parts and digests exactly (a 7-day p95 comes from merged digests)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from exporter.records import OrgTotals, RangeSummary, SnapshotRow
from exporter.reports import HistoryRow, OrgReport, StageReport
from exporter.timestamps import HOUR_MS, format_rfc3339
from rollup import merger, packed
from rollup.codec import decode_stored, merge_stored
from rollup.digest import LatencyDigest
from rollup.packed import PackedDigest
from rollup.parts import ADDITIVE, QUANTILES, derived, latency_fields, ratio
from rollup.summary import Plan

PERIOD_MS = {"hourly": HOUR_MS, "daily": 24 * HOUR_MS}


def parts_json(parts: Any) -> dict[str, Any]:
    """Additive parts (``SnapshotParts`` or stored) as JSON; digests summarised as count,
    sum, min and max (ms)."""
    out: dict[str, Any] = {name: getattr(parts, name) for name in ADDITIVE}
    out["stages"] = {
        stage: {
            "started": sp.started,
            "succeeded": sp.succeeded,
            "failed": sp.failed,
            "ai_cost_usd": sp.ai_cost_usd,
            "latency": _digest_json(sp.latency),
        }
        for stage, sp in parts.stages.items()
    }
    out["end_to_end"] = _digest_json(parts.end_to_end)
    out["stage_ai_cost_usd"] = dict(parts.stage_ai_cost_usd)
    return out


def _digest_json(digest: LatencyDigest | PackedDigest) -> dict[str, float]:
    return {"count": digest.count, "sum_ms": digest.sum, "min_ms": digest.min,
            "max_ms": digest.max}  # fmt: skip


def history(rows: Iterable[SnapshotRow]) -> list[HistoryRow]:
    """One entry per snapshot, ascending, with parts and derived fields."""
    found = [(row, decode_stored(row.parts)) for row in rows]
    digests = [d for _, parts in found for d in _digests_of(parts)]
    values = merger.quantiles_of(digests, [q for _, q in QUANTILES])  # each digest checked
    known = dict(zip(digests, values, strict=True))
    return [
        HistoryRow(
            period_start=format_rfc3339(row.period_start_ms),
            period_end=format_rfc3339(row.period_start_ms + PERIOD_MS[row.period]),
            parts=parts_json(parts),
            derived=derived(parts, known.__getitem__),
        )
        for row, parts in found
    ]


def summary(plan: Plan, rows: Iterable[SnapshotRow]) -> RangeSummary:
    """The planned snapshots merged into one row (digests merged, never averaged)."""
    merged = _merged(rows)
    return RangeSummary(
        plan.start_ms, plan.end_ms, parts_json(merged), derived(merged),
        len(plan.days), len(plan.hours), plan.gaps,
    )  # fmt: skip


def stages(rows: Iterable[SnapshotRow]) -> list[StageReport]:
    """Per processing stage over the whole range: attempts (started events), successes,
    failures, failure rate and latency from the merged digests."""
    merged = _merged(rows)
    return [
        StageReport(
            stage=stage,
            attempts=sp.started,
            successes=sp.succeeded,
            failures=sp.failed,
            failure_rate=ratio(sp.failed, sp.succeeded + sp.failed),
            ai_cost_usd=sp.ai_cost_usd,
            **latency_fields("latency", sp.latency),
        )
        for stage, sp in merged.stages.items()
    ]


def merged_runs(runs: Mapping[str, tuple[int, bytes]]) -> dict[str, PackedDigest]:
    """Each org's run of stored end-to-end digests (``Snapshots.end_to_end_digests``),
    merged."""
    found = list(runs)
    merged = merger.merge_groups([packed.decode_run(*runs[org]) for org in found])
    return dict(zip(found, merged, strict=True))


def orgs(
    totals: Sequence[OrgTotals],
    merged: Mapping[str, PackedDigest],
    names: Mapping[str, str],
) -> list[OrgReport]:
    """Per organisation: counts, failure rate, cost and end-to-end avg/p95 (``merged``
    digests; none when the org stored none over the range)."""
    out = []
    for t in totals:
        e2e = merged.get(t.org_id, packed.EMPTY)
        out.append(OrgReport(
            org_id=t.org_id,
            name=names.get(t.org_id),
            received=t.received,
            completed=t.completed,
            failed=t.failed,
            failure_rate=ratio(t.failed, t.completed + t.failed),
            ai_cost_usd=t.ai_cost_usd,
            end_to_end_avg_ms=e2e.avg,
            end_to_end_p95_ms=e2e.quantile(0.95),
        ))  # fmt: skip
    return out


def _merged(rows: Iterable[SnapshotRow]) -> Any:
    """The rows' stored parts merged into one, digests in their packed form."""
    return merge_stored([[decode_stored(row.parts) for row in rows]])[0]


def _digests_of(parts: Any) -> list[PackedDigest]:
    return [*(sp.latency for sp in parts.stages.values()), parts.end_to_end]
