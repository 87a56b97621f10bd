"""The rows of the snapshot reports the read API returns (``/v1/metrics/history``,
``/stages`` and ``/orgs``): built by ``rollup.reports``, encoded by the handlers and
described in the OpenAPI document, all from these types."""

from __future__ import annotations

from typing import Any

import msgspec


class HistoryRow(msgspec.Struct, kw_only=True):
    """One snapshot: its additive parts (digests summarised as count, sum, min and max in
    ms) and every derived rate, average and percentile."""

    period_start: str
    period_end: str
    parts: dict[str, Any]
    derived: dict[str, float]


class StageReport(msgspec.Struct, kw_only=True):
    """One processing stage over a range, latency from the merged digests (ms)."""

    stage: str
    attempts: int
    successes: int
    failures: int
    failure_rate: float
    ai_cost_usd: float
    latency_avg_ms: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float


class OrgReport(msgspec.Struct, kw_only=True):
    """One organisation over a range; ``name`` is its display name, null when unset."""

    org_id: str
    name: str | None
    received: int
    completed: int
    failed: int
    failure_rate: float
    ai_cost_usd: float
    end_to_end_avg_ms: float
    end_to_end_p95_ms: float
