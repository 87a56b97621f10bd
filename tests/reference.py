"""A randomized pipeline stream and the brute-force recomputation of every snapshot part
from the raw event rows: the reference the rollups and the range summary are checked against."""

from __future__ import annotations

import math
import random
import sqlite3
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _success_metadata(rng: random.Random, stage: str) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if stage in ("transcription", "claims_extraction") and rng.random() < 0.8:
        meta["confidence"] = round(rng.random(), 4)
    if stage == "claims_extraction":
        meta["claim_count"] = rng.randint(0, 12)
    if stage == "entity_resolution":
        entities = rng.randint(0, 10)
        auto = rng.randint(0, entities)
        meta.update(entity_count=entities, auto_resolved_count=auto,
                    disambiguation_count=entities - auto)  # fmt: skip
    if stage == "draft_generation":
        meta["draft_count"] = rng.randint(1, 4)
    if rng.random() < 0.5:
        meta["ai_cost_usd"] = round(rng.uniform(0, 0.2), 6)
    return meta


NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


ORGS = ["org-a", "org-b", "org-c", "org-d", "org-e", "org-f", "org-g", None]


STAGE_FLOW = [
    ("transcription", "transcription_started", "transcription_completed", "transcription_failed"),
    ("claims_extraction", "claims_extraction_started", "claims_extracted",
     "claims_extraction_failed"),
    ("entity_resolution", "entity_resolution_started", "entity_resolution_completed",
     "entity_resolution_failed"),
    ("draft_generation", "draft_generation_started", "drafts_generated",
     "draft_generation_failed"),
]  # fmt: skip


TERMINALS = {
    "artifact_received": "ingestion",
    "draft_confirmed": "confirmation",
    "draft_rejected": "confirmation",
}


def note_events(rng: random.Random, n: int, start: datetime) -> list[dict[str, Any]]:
    """One voice note's journey, with random failures, durations given three ways or not
    at all, metadata, retries and costs."""
    org = rng.choice(ORGS)
    art = f"note-{n}"
    t = start
    out: list[dict[str, Any]] = []

    def emit(event_type: str, **fields: Any) -> None:
        event = {"event_id": f"{art}-{len(out)}", "event_type": event_type, "timestamp": iso(t),
                 "artifact_id": art, **fields}  # fmt: skip
        if org:
            event["org_id"] = org
        if rng.random() < 0.4:
            event.setdefault("metadata", {})["ai_cost_usd"] = round(rng.uniform(0, 0.05), 6)
        out.append(event)

    emit("artifact_received")
    for stage, started, success, failure in STAGE_FLOW:
        t += timedelta(seconds=rng.uniform(0.5, 5))
        began = t
        if rng.random() < 0.9:
            emit(started)
        t += timedelta(milliseconds=rng.lognormvariate(7, 1))
        how = rng.random()
        timing: dict[str, Any] = {}
        if how < 0.3:
            timing["duration_ms"] = round((t - began).total_seconds() * 1000, 3)
        elif how < 0.45:
            timing["stage_started_at"] = iso(began)
        if rng.random() < 0.1:
            if rng.random() < 0.5:
                emit("retry_initiated", stage=stage, metadata={"retry_attempt": 1})
                emit("retry_failed", stage=stage)
            emit(failure, error_code="E_TIMEOUT", **timing)
            emit("artifact_failed")
            return out
        emit(success, **timing, metadata=_success_metadata(rng, stage))
        if stage == "entity_resolution" and rng.random() < 0.3:
            out[-1]["event_type"] = "entity_needs_disambiguation"
    t += timedelta(seconds=rng.uniform(1, 30))
    emit(rng.choice(["draft_confirmed", "draft_rejected"]))
    if rng.random() < 0.05:
        emit("retry_succeeded", stage="draft_generation")
    emit("artifact_completed", **({"duration_ms": 1234.5} if rng.random() < 0.2 else {}))
    return out


def system_events(rng: random.Random, start: datetime, hours: int) -> list[dict[str, Any]]:
    out = []
    for i in range(60):
        when = start + timedelta(seconds=rng.uniform(0, hours * 3600))
        event_type = rng.choice(["circuit_breaker_opened", "circuit_breaker_closed",
                                 "budget_threshold_reached", "budget_exceeded", "rate_limit_hit",
                                 "artifact_status_changed"])  # fmt: skip
        event: dict[str, Any] = {"event_id": f"sys-{i}", "event_type": event_type,
                                 "timestamp": iso(when)}  # fmt: skip
        if event_type == "artifact_status_changed":
            event.update(artifact_id=f"note-{i}", previous_status="a", new_status="b")
        if rng.random() < 0.5 and (org := rng.choice(ORGS)):
            event["org_id"] = org
        if rng.random() < 0.3:
            event["metadata"] = {"ai_cost_usd": 0.01}
        out.append(event)
    return out


SUCCESS = {s: success for s, _, success, _ in STAGE_FLOW}


def reference(rows: list[sqlite3.Row]) -> dict[str, Any]:
    """Every part and derived field for one scope's raw rows, by plain loops."""
    r: dict[str, Any] = defaultdict(float)
    lat: dict[str, list[float]] = defaultdict(list)
    by_type: dict[str, list[sqlite3.Row]] = defaultdict(list)
    for row in rows:
        by_type[row["event_type"]].append(row)
        r["ai_cost_usd"] += row["ai_cost_usd"] or 0.0
    n = lambda t: len(by_type[t])  # noqa: E731
    r["artifacts_received"] = n("artifact_received")
    r["artifacts_completed"] = n("artifact_completed")
    r["artifacts_failed"] = n("artifact_failed")
    for stage, started, success, failure in STAGE_FLOW:
        successes = by_type[success] + (
            by_type["entity_needs_disambiguation"] if stage == "entity_resolution" else []
        )
        r[f"{stage}.started"] = n(started)
        r[f"{stage}.succeeded"] = len(successes)
        r[f"{stage}.failed"] = n(failure)
        lat[stage] = [row["duration_ms"] for row in successes if row["duration_ms"] is not None]
        r[f"{stage}.ai_cost_usd"] = sum(
            (row["ai_cost_usd"] or 0.0) for row in rows if row["stage"] == stage
        )
    lat["end_to_end"] = [
        row["duration_ms"]
        for row in by_type["artifact_completed"]
        if row["duration_ms"] is not None
    ]
    for part, event_type in (("transcript", "transcription_completed"),
                             ("claim", "claims_extracted")):  # fmt: skip
        values = [row["confidence"] for row in by_type[event_type] if row["confidence"] is not None]
        r[f"{part}_confidence_count"] = len(values)
        r[f"{part}_confidence_sum"] = sum(values)
    resolutions = by_type["entity_resolution_completed"] + by_type["entity_needs_disambiguation"]
    for column, part in (("entity_count", "entity_count_sum"),
                         ("auto_resolved_count", "auto_resolved_sum"),
                         ("disambiguation_count", "disambiguation_sum")):  # fmt: skip
        r[part] = sum(row[column] or 0 for row in resolutions)
    r["resolutions_completed"] = n("entity_resolution_completed")
    r["resolutions_needs_disambiguation"] = n("entity_needs_disambiguation")
    r["claim_count_sum"] = sum(row["claim_count"] or 0 for row in by_type["claims_extracted"])
    r["draft_count_sum"] = sum(row["draft_count"] or 0 for row in by_type["drafts_generated"])
    for part, event_type in (
        ("drafts_confirmed", "draft_confirmed"), ("drafts_rejected", "draft_rejected"),
        ("retries_initiated", "retry_initiated"), ("retries_succeeded", "retry_succeeded"),
        ("retries_failed", "retry_failed"), ("circuit_breaker_openings", "circuit_breaker_opened"),
        ("budget_threshold_reached", "budget_threshold_reached"),
        ("budget_exceeded", "budget_exceeded"), ("rate_limit_hits", "rate_limit_hit"),
    ):  # fmt: skip
        r[part] = n(event_type)
    for stage in ("ingestion", "confirmation"):
        r[f"cost.{stage}"] = sum(
            (row["ai_cost_usd"] or 0.0) for row in rows if row["stage"] == stage
        )
    return {"counts": dict(r), "latencies": dict(lat)}


def exact_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1] if ordered else 0.0
