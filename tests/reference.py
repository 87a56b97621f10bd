"""A randomized pipeline stream and the brute-force recomputation of every snapshot part
from the raw event rows: the reference the rollups and the range summary are checked against,
and the comparison of every stored snapshot with it (on either backend)."""

from __future__ import annotations

import math
import random
import sqlite3
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rollup.codec import decode_parts
from rollup.parts import SnapshotParts, derived
from tests.backends import rows


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


def recent_batches(now: datetime, notes: int, seed: int) -> list[list[dict[str, Any]]]:
    """Batches of 100 events before ``now`` (real time, within event retention), two of
    them delivered twice inside the batch and 5 % delivered again in another batch:
    ``notes`` voice notes over the closed hours of the last day, a fifth of them within the
    last hour (the live window), and 60 system events."""
    rng = random.Random(seed)
    first = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=25)
    latest = now - timedelta(minutes=10)  # a note lasts minutes: none ends in the future
    events: list[dict[str, Any]] = []
    for n in range(notes):
        earliest = now - timedelta(minutes=55) if n % 5 == 0 else first
        events += note_events(rng, n, earliest + (latest - earliest) * rng.random())
    events += system_events(rng, first, 24)  # up to the current hour: closed hours only
    rng.shuffle(events)
    events += rng.sample(events, len(events) // 20)
    rng.shuffle(events)
    batches = [events[i : i + 100] for i in range(0, len(events), 100)]
    return [batch + rng.sample(batch, min(2, len(batch))) for batch in batches]


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


def assert_matches(parts: SnapshotParts, ref: dict[str, Any], where: str) -> None:
    counts, lats = ref["counts"], ref["latencies"]
    got: dict[str, Any] = {
        name: getattr(parts, name) for name in counts if "." not in name and hasattr(parts, name)
    }
    for stage, sp in parts.stages.items():
        got |= {f"{stage}.started": sp.started, f"{stage}.succeeded": sp.succeeded,
                f"{stage}.failed": sp.failed, f"{stage}.ai_cost_usd": sp.ai_cost_usd}  # fmt: skip
    got["cost.ingestion"] = parts.stage_ai_cost_usd["ingestion"]
    got["cost.confirmation"] = parts.stage_ai_cost_usd["confirmation"]
    assert set(got) == set(counts), where
    for name, value in counts.items():
        assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-9), f"{where} {name}"
    fields = derived(parts)
    digests = {**{s: sp.latency for s, sp in parts.stages.items()}, "end_to_end": parts.end_to_end}
    for name, values in lats.items():
        digest = digests[name]
        assert digest.count == len(values), f"{where} {name} count"
        assert digest.sum == pytest.approx(sum(values), rel=1e-9), f"{where} {name} sum"
        prefix = f"{name}_latency"
        avg = sum(values) / len(values) if values else 0.0
        assert fields[f"{prefix}_avg_ms"] == pytest.approx(avg, rel=1e-9), f"{where} {name}"
        for label, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            exact = exact_quantile(values, q)
            assert fields[f"{prefix}_{label}_ms"] == pytest.approx(exact, rel=0.01, abs=1e-9), (
                f"{where} {name} {label}"
            )
    done, failed = counts["artifacts_completed"], counts["artifacts_failed"]
    assert fields["failure_rate"] == (failed / (done + failed) if done + failed else 0.0)
    entities = counts["entity_count_sum"]
    auto = counts["auto_resolved_sum"]
    assert fields["auto_resolution_rate"] == (auto / entities if entities else 0.0)
    received = counts["artifacts_received"]
    assert fields["avg_cost_per_artifact_usd"] == pytest.approx(
        counts["ai_cost_usd"] / received if received else 0.0, rel=1e-9
    )


def check_all_snapshots(database_url: str, tmp_path: Path) -> tuple[int, int]:
    """Compare every hourly and daily snapshot with the reference; returns rows checked."""
    events = rows(database_url, tmp_path, "SELECT * FROM events")
    checked = {"hourly": 0, "daily": 0}
    for period, size in (("hourly", 3_600_000), ("daily", 86_400_000)):
        snaps = rows(
            database_url,
            tmp_path,
            "SELECT period_start_ms, scope, parts FROM snapshots WHERE period = ?",
            period,
        )
        windows = {s["period_start_ms"] for s in snaps}
        for start in windows:
            inside = [e for e in events if start <= e["ts_ms"] < start + size]
            scopes = {s["scope"]: s["parts"] for s in snaps if s["period_start_ms"] == start}
            expected_scopes = {""} | {e["org_id"] for e in inside if e["org_id"]}
            assert set(scopes) == expected_scopes, (period, start)
            for scope, blob in scopes.items():
                mine = [e for e in inside if not scope or e["org_id"] == scope]
                assert_matches(decode_parts(blob), reference(mine), f"{period} {start} {scope!r}")
                checked[period] += 1
    return checked["hourly"], checked["daily"]
