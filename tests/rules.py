"""The shipped alert and recording rules, named for the tests: the rule file, its promtool
unit tests, the runbook base URL and every alert and recording rule voxmon ships."""

from __future__ import annotations

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
