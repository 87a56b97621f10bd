"""prometheus.yml and alert_rules.yml checked by promtool, the alert unit tests in
tests/promtool/ run by promtool, and the conventions every alert follows."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.rules import (
    ALERTS,
    DOCS,
    RECORDS,
    ROOT,
    RULES,
    RUNBOOK_BASE,
    UNIT_TESTS,
    expressions,
    promtool,
    replica_problems,
)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def rule_blocks() -> list[tuple[str, str, str]]:
    """``(kind, name, text)`` of every rule in alert_rules.yml, in file order."""
    text = RULES.read_text(encoding="utf-8")
    starts = list(re.finditer(r"^\s+- (alert|record): (\S+)$", text, re.MULTILINE))
    ends = [m.start() for m in starts[1:]] + [len(text)]
    return [(m[1], m[2], text[m.start() : end]) for m, end in zip(starts, ends, strict=True)]


def test_prometheus_config_passes_promtool_check_config() -> None:
    result = run("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: prometheus.yml is valid prometheus config file syntax" in result.stdout
    assert "SUCCESS: 1 rule files found" in result.stdout


def test_alert_rules_pass_promtool_check_rules() -> None:
    result = run("check", "rules", "alert_rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 25 rules found" in result.stdout


def test_alert_rule_unit_tests_pass_promtool_test_rules() -> None:
    assert [path.name for path in UNIT_TESTS] == [
        "pipeline_alerts.yml",
        "recording_rules.yml",
        "two_replicas.yml",
        "voxmon_alerts.yml",
    ]
    result = run("test", "rules", *(str(path.relative_to(ROOT)) for path in UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(UNIT_TESTS), result.stdout
    assert "FAILED" not in result.stdout + result.stderr


def test_rule_file_holds_the_documented_rules() -> None:
    blocks = rule_blocks()
    assert [name for kind, name, _ in blocks if kind == "record"] == RECORDS
    alerts = [name for kind, name, _ in blocks if kind == "alert"]
    assert list(dict.fromkeys(alerts)) == ALERTS
    assert alerts.count("VoicePipelineHighFailureRate") == 2  # warning and critical


@pytest.mark.parametrize("alert", ALERTS)
def test_alert_has_severity_summary_description_and_runbook(alert: str) -> None:
    texts = [text for kind, name, text in rule_blocks() if kind == "alert" and name == alert]
    for text in texts:
        assert re.search(r"^\s+severity: (warning|critical)$", text, re.MULTILINE), text
        assert re.search(r"^\s+summary: \S", text, re.MULTILINE), text
        assert re.search(r"^\s+description: \S", text, re.MULTILINE), text
        runbooks = re.findall(r"^\s+runbook_url: (\S+)$", text, re.MULTILINE)
        assert runbooks == [RUNBOOK_BASE + alert.lower()]
    # The anchor is the slug of the heading "## <AlertName>" in docs/runbooks.md.
    headings = re.findall(r"^## (\S+)$", DOCS.read_text(encoding="utf-8"), re.MULTILINE)
    assert headings.count(alert) == 1


def test_high_failure_rate_severities_and_thresholds() -> None:
    texts = [t for k, n, t in rule_blocks() if n == "VoicePipelineHighFailureRate"]
    found = [
        (re.findall(r"severity: (\w+)", t), re.findall(r"rate30m > ([\d.]+)", t)) for t in texts
    ]
    assert found == [(["warning"], ["0.10"]), (["critical"], ["0.25"])]
    assert all("voice_pipeline:artifact_finishes:increase30m >= 20" in t for t in texts)


def unit_test_cases() -> dict[str, set[str]]:
    """Alert name -> kinds of promtool cases found: "fires" (non-empty exp_alerts) and
    "silent" (``exp_alerts: []``)."""
    cases: dict[str, set[str]] = {}
    for path in UNIT_TESTS:
        lines = path.read_text(encoding="utf-8").splitlines()
        for index, line in enumerate(lines):
            if match := re.fullmatch(r"\s+alertname: (\S+)", line):
                expected = lines[index + 1].strip()
                kind = "silent" if expected == "exp_alerts: []" else "fires"
                assert expected in ("exp_alerts: []", "exp_alerts:"), f"{path.name}:{index + 2}"
                cases.setdefault(match[1], set()).add(kind)
    return cases


def test_every_alert_has_a_firing_and_a_silent_promtool_case() -> None:
    assert unit_test_cases() == {alert: {"fires", "silent"} for alert in ALERTS}


def test_rules_hold_with_several_replicas() -> None:
    """Shared-state gauges under a max over instances, per-replica counters summed over
    instances (tests/rules.py classifies every metric the rules read)."""
    exprs = expressions(RULES.read_text(encoding="utf-8"))
    assert len(exprs) == len(RECORDS) + len(ALERTS) + 1  # HighFailureRate twice
    assert {expr: replica_problems(expr) for expr in exprs if replica_problems(expr)} == {}


@pytest.mark.parametrize(
    ("expr", "problems"),
    [
        ("max without (instance) (voice_pipeline_stuck_artifacts) > 0", []),
        ("sum(max by (stage) (voice_pipeline_inflight_artifacts))", []),
        ("voice_pipeline_stuck_artifacts > 0",
         ["voice_pipeline_stuck_artifacts: shared state under nothing, not a max over instances"]),
        ("sum without (stage) (voice_pipeline_inflight_artifacts)",
         ["voice_pipeline_inflight_artifacts: shared state under sum without (stage), not a max"
          " over instances"]),
        ("max by (instance) (voxmon_database_size_bytes)",
         ["voxmon_database_size_bytes: shared state under max by (instance), not a max over"
          " instances"]),
        ('max without (instance) (increase(voxmon_rollup_runs_total{result="failure"}[90m]))', []),
        ("histogram_quantile(0.95, sum by (le) (rate(voxmon_commit_duration_seconds_bucket[5m])))",
         []),
        ("sum by (instance) (rate(voxmon_ingest_events_total[5m]))", []),
        ("sum without (result) (rate(voxmon_ingest_events_total[15m]))",
         ["voxmon_ingest_events_total: counter under sum without (result), not summed over"
          " instances"]),
        ("max by (stage) (rate(voice_pipeline_stage_outcomes_total[5m]))",
         ["voice_pipeline_stage_outcomes_total: counter under max by (stage), not summed over"
          " instances"]),
        ("max(voxmon_something_new)", ["voxmon_something_new: not classified in tests/rules.py"]),
    ],
)  # fmt: skip
def test_replica_problems_finds_wrong_aggregations(expr: str, problems: list[str]) -> None:
    assert replica_problems(expr) == problems
