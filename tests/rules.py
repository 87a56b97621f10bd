"""The shipped alert and recording rules, named for the tests: the rule file, its promtool
unit tests, the runbook base URL and every alert and recording rule voxmon ships; and how a
PromQL expression must aggregate each metric when several voxmon replicas are scraped."""

from __future__ import annotations

import re
from pathlib import Path

from tests.tools import require

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "alert_rules.yml"
UNIT_TESTS = sorted((ROOT / "tests" / "promtool").glob("*.yml"))
RUNBOOK_BASE = "https://github.com/voxmon/voxmon/blob/main/docs/runbooks.md#"
"""monitoring/runbooks.py's DEFAULT_BASE and the anchor separator (tests/test_runbooks.py)."""
DOCS = ROOT / "docs" / "runbooks.md"

ALERTS = [
    "VoicePipelineHighFailureRate",
    "VoicePipelineStageFailureRate",
    "VoicePipelineLatencyHigh",
    "VoicePipelineEndToEndLatencyHigh",
    "VoicePipelineQueueDepthHigh",
    "VoicePipelineStuckArtifacts",
    "VoicePipelineDisambiguationBacklog",
    "VoicePipelineCircuitBreakerOpen",
    "VoicePipelineInactive",
    "VoxmonDown",
    "VoxmonReplicaDown",
    "VoxmonRollupFailing",
    "VoxmonRollupStale",
    "VoxmonStorageUnhealthy",
    "VoxmonIngestRejectionsHigh",
]
RECORDS = [
    "voice_pipeline:artifact_finishes:increase30m",
    "voice_pipeline:artifact_failure_ratio:rate30m",
    "stage:voice_pipeline_stage_finishes:increase30m",
    "stage:voice_pipeline_stage_failure_ratio:rate30m",
    "stage:voice_pipeline_stage_duration_seconds:p95_rate30m",
    "voice_pipeline:end_to_end_duration_seconds:p95_rate30m",
    "stage:voice_pipeline_stage_latency_window_seconds:p95",
    "voice_pipeline:end_to_end_latency_window_seconds:p95",
    "voice_pipeline:circuit_breaker_open:latest",
]


def promtool() -> str:
    """Path of promtool (required in CI)."""
    return require("promtool")


def expressions(text: str) -> list[str]:
    """Every ``expr:`` of a rules file, in file order (one line, or a ``|`` block: the lines
    indented deeper than ``expr:``)."""
    found, lines = [], text.splitlines()
    for index, line in enumerate(lines):
        if not (match := re.fullmatch(r"(\s+)expr: (.*)", line)):
            continue
        if match[2] != "|":
            found.append(match[2])
            continue
        block = []
        for following in lines[index + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= len(match[1]):
                break
            block.append(following)
        found.append("\n".join(block).strip())
    return found


SHARED = (
    "voice_pipeline_window_events",
    "voice_pipeline_stage_latency_window_seconds",
    "voice_pipeline_end_to_end_latency_window_seconds",
    "voice_pipeline_inflight_artifacts",
    "voice_pipeline_stuck_artifacts",
    "voice_pipeline_disambiguation_backlog",
    "voice_pipeline_latency_baseline_seconds",
    "voice_pipeline_last_event_timestamp_seconds",
    "voice_pipeline_circuit_breaker_open",
    "voxmon_live_orgs",
    "voxmon_orgs_seen",
    "voxmon_snapshot_rows",
    "voxmon_database_size_bytes",
    "voxmon_rollup_runs_total",
    "voxmon_rollup_duration_seconds_sum",
    "voxmon_rollup_duration_seconds_count",
    "voxmon_rollup_last_success_timestamp_seconds",
)
"""Series every replica exports with the same value (shared state read from the database),
or whose newest value over the replicas counts: taken with ``max``, never summed. The last
event times and the per-replica circuit-breaker gauge are per replica but only their
maximum means anything."""
COUNTERS = (
    "voice_pipeline_events_total",
    "voice_pipeline_artifacts_total",
    "voice_pipeline_stage_outcomes_total",
    "voice_pipeline_ai_cost_usd_total",
    "voice_pipeline_stage_duration_seconds_bucket",
    "voice_pipeline_stage_duration_seconds_sum",
    "voice_pipeline_stage_duration_seconds_count",
    "voice_pipeline_end_to_end_duration_seconds_bucket",
    "voice_pipeline_end_to_end_duration_seconds_sum",
    "voice_pipeline_end_to_end_duration_seconds_count",
    "voxmon_ingest_requests_total",
    "voxmon_ingest_events_total",
    "voxmon_ingest_rejected_total",
    "voxmon_ingest_warnings_total",
    "voxmon_commit_duration_seconds_bucket",
    "voxmon_commit_duration_seconds_sum",
    "voxmon_commit_batch_events_bucket",
    "voxmon_commit_wait_seconds_total",
    "voxmon_storage_errors_total",
    "voxmon_http_internal_errors_total",
)
"""Per-replica counters and histogram series: each replica counts what it ingested, so
they are summed over replicas (``sum``, possibly ``by (instance)`` for a per-replica view)."""
PER_REPLICA = (
    "voxmon_ingest_queue_depth",
    "voxmon_storage_healthy",
    "voxmon_leader",
    "voxmon_instance_info",
)
"""Per-replica gauges of one process's health: any aggregation (or none) is meaningful."""

_METRIC = re.compile(r"(?<![\w:])(?:voice_pipeline|voxmon)_\w+")
_AGGREGATION = re.compile(r"(\w+)\s*(?:(by|without)\s*\(([^()]*)\)\s*)?$")
_AGGREGATORS = {"sum", "max", "min", "avg", "count", "topk", "bottomk", "quantile", "group"}


def aggregation(expr: str, at: int) -> tuple[str, str, set[str]] | None:
    """The innermost aggregation around position ``at`` of ``expr``: operator, ``by`` or
    ``without`` (``""`` when neither) and the label names; None when not aggregated.
    Function calls (``rate(``, ``increase(`` ...) and plain parentheses are looked through."""
    depth = 0
    for index in range(at - 1, -1, -1):
        if expr[index] == ")":
            depth += 1
        elif expr[index] == "(" and depth:
            depth -= 1
        elif expr[index] == "(":
            match = _AGGREGATION.search(expr[:index])
            if match and match[1] in _AGGREGATORS:
                labels = {label.strip() for label in (match[3] or "").split(",")} - {""}
                return match[1], match[2] or "", labels
    return None


def _keeps_instance(mode: str, labels: set[str]) -> bool:
    return "instance" in labels if mode == "by" else mode == "without" and "instance" not in labels


def replica_problems(expr: str) -> list[str]:
    """How ``expr`` would be wrong with several replicas scraped: a shared-state series not
    taken with a ``max`` over instances, a counter not summed over instances (a per-replica
    view names ``instance`` in ``by``), a metric not classified in SHARED, COUNTERS or
    PER_REPLICA."""
    problems = []
    for match in _METRIC.finditer(expr):
        name, found = match[0], aggregation(expr, match.start())
        op, mode, labels = found or ("", "", set())
        keeps = _keeps_instance(mode, labels)
        grouping = f"{mode} ({', '.join(sorted(labels))})" if mode else ""
        where = " ".join(filter(None, [op, grouping])) or "nothing"
        if name in SHARED and (op != "max" or keeps):
            problems.append(f"{name}: shared state under {where}, not a max over instances")
        elif name in COUNTERS and (op != "sum" or (keeps and mode != "by")):
            problems.append(f"{name}: counter under {where}, not summed over instances")
        elif name not in SHARED + COUNTERS + PER_REPLICA:
            problems.append(f"{name}: not classified in tests/rules.py")
    return problems
