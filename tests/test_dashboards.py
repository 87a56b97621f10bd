"""Grafana dashboards and provisioning: stable uids, unique panel ids, units, data sources.

Whether each panel's PromQL runs and returns data is proven against a real Prometheus in
``tests/test_prometheus_integration.py``; both read them through ``tests/dashboards.py``.
"""

from __future__ import annotations

import re

import pytest

from tests.dashboards import (
    DASHBOARDS,
    HISTORY_PATH,
    INFINITY,
    ORGS_PATH,
    PROMETHEUS,
    ROOT,
    SUMMARY_PATH,
    infinity_targets,
    panels,
    targets,
    variable,
)
from tests.rules import replica_problems

PROVISIONING = ROOT / "grafana" / "provisioning"

EXPECTED = {
    "voxmon-daemon-health.json": ("voxmon-daemon", "voxmon — daemon health"),
    "voxmon-organisations.json": ("voxmon-orgs", "Voice pipeline — organisations"),
    "voxmon-overview.json": ("voxmon-overview", "Voice pipeline — overview"),
    "voxmon-stages.json": ("voxmon-stages", "Voice pipeline — stages"),
}
"""File -> (uid, title). Links and bookmarks use the uids: changing one is a breaking change."""


def test_dashboards_have_the_stable_uids_and_titles() -> None:
    found = {name: (d["uid"], d["title"]) for name, d in DASHBOARDS.items()}
    assert found == EXPECTED
    assert sorted(d["uid"] for d in DASHBOARDS.values()) == [
        "voxmon-daemon",
        "voxmon-orgs",
        "voxmon-overview",
        "voxmon-stages",
    ]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dashboard_panel_ids_are_unique_and_every_data_panel_has_a_unit(name: str) -> None:
    dashboard = DASHBOARDS[name]
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {name}: {sorted(ids)}"
    missing = [
        panel["title"]
        for panel in panels(dashboard)
        if panel["type"] != "row" and not panel["fieldConfig"]["defaults"].get("unit")
    ]
    assert missing == []
    rows_with_queries = [
        p["title"] for p in panels(dashboard) if p["type"] == "row" and p.get("targets")
    ]
    assert rows_with_queries == []


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dashboard_queries_go_through_the_datasource_variables(name: str) -> None:
    dashboard = DASHBOARDS[name]
    uids = {
        (target.get("datasource") or panel["datasource"])["uid"]
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    }
    assert uids <= {"${datasource}", "${history}"}
    assert variable(dashboard, "datasource")["query"] == PROMETHEUS
    assert variable(dashboard, "datasource")["current"]["value"] == "prometheus"
    if "${history}" in uids:
        assert variable(dashboard, "history")["query"] == INFINITY
        assert variable(dashboard, "history")["current"]["value"] == "voxmon-history"


def test_dashboard_query_counts() -> None:
    counts = {
        name: (len(list(targets(d, PROMETHEUS))), len(list(targets(d, INFINITY))))
        for name, d in DASHBOARDS.items()
    }
    assert counts == {
        "voxmon-daemon-health.json": (24, 0),
        "voxmon-organisations.json": (8, 5),
        "voxmon-overview.json": (23, 6),
        "voxmon-stages.json": (10, 3),
    }


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dashboard_queries_hold_with_several_replicas(name: str) -> None:
    """Shared-state gauges under a max over instances, per-replica counters summed
    (tests/rules.py classifies every metric), so no panel doubles with two replicas."""
    problems = {
        f"{panel['title']} / {target['refId']}": replica_problems(target["expr"])
        for panel, target in targets(DASHBOARDS[name], PROMETHEUS)
    }
    assert {where: found for where, found in problems.items() if found} == {}


def test_replicas_row_names_the_leader_and_shows_each_replica() -> None:
    dashboard = DASHBOARDS["voxmon-daemon-health.json"]
    (row,) = [p for p in panels(dashboard) if p["type"] == "row" and p["title"] == "Replicas"]
    below = sorted(
        (p for p in panels(dashboard) if p["gridPos"]["y"] == row["gridPos"]["y"] + 1),
        key=lambda p: p["gridPos"]["x"],
    )
    found = [(p["title"], [(t["expr"], t["legendFormat"]) for t in p["targets"]]) for p in below]
    assert found == [
        ("Job leader", [("voxmon_instance_info and on (instance, job) (voxmon_leader == 1)",
                         "{{instance_id}}")]),
        ("Accepted events by replica", [(
            'sum by (instance) (rate(voxmon_ingest_events_total{result="accepted"}'
            "[$__rate_interval]))", "{{instance}}")]),
        ("Storage healthy by replica", [("min by (instance) (voxmon_storage_healthy)",
                                         "{{instance}}")]),
        ("Job leader by replica", [("max by (instance) (voxmon_leader)", "{{instance}}")]),
    ]  # fmt: skip
    assert sum(p["gridPos"]["w"] for p in below) == 24
    assert (below[0]["targets"][0]["instant"], below[0]["options"]["textMode"]) == (True, "name")
    (up,) = [p for p in panels(dashboard) if p["title"] == "Replicas up"]
    assert [t["expr"] for t in up["targets"]] == ['sum(up{job="voxmon"})',
                                                  'sum(1 - up{job="voxmon"})']  # fmt: skip


def test_history_panels_read_the_history_api_over_their_own_range() -> None:
    """Infinity queries: GET /v1/metrics/history with the panel's time range (Infinity's
    backend macros ``${__timeFrom}``/``${__timeTo}``, epoch ms, which follow a panel's
    relative-time override, unlike Grafana's ``${__from}``), rows under ``rows``, time
    from ``period_start``, values from ``parts.*`` and ``derived.*``."""
    for dashboard in DASHBOARDS.values():
        for panel, target in infinity_targets(dashboard, HISTORY_PATH):
            params = {p["key"]: p["value"] for p in target["url_options"]["params"]}
            assert (target["type"], target["source"], target["parser"]) == (
                "json",
                "url",
                "backend",
            )
            assert params.keys() - {"org_id"} == {"period", "start", "end"}
            assert params["start"] == "${__timeFrom}" and params["end"] == "${__timeTo}"
            assert params.get("org_id", "${org}") == "${org}"
            assert (params["period"], panel["timeFrom"]) in {("daily", "90d"), ("hourly", "7d")}
            assert target["root_selector"] == "rows"
            first, *values = target["columns"]
            assert first == {"selector": "period_start", "text": "Time", "type": "timestamp"}
            assert values and all(
                re.fullmatch(r"(parts|derived)\.[a-z0-9_]+", c["selector"])
                and c["type"] == "number"
                for c in values
            ), panel["title"]


def test_infinity_queries_read_history_summary_or_orgs() -> None:
    urls = [t["url"] for d in DASHBOARDS.values() for _, t in targets(d, INFINITY)]
    assert sorted(set(urls)) == [HISTORY_PATH, ORGS_PATH, SUMMARY_PATH]
    assert (urls.count(HISTORY_PATH), urls.count(SUMMARY_PATH), urls.count(ORGS_PATH)) == (11, 2, 1)


def test_summary_cards_read_one_row_over_the_dashboard_range() -> None:
    """GET /v1/metrics/summary answers one ``row`` with a history row's field names; the cards
    follow the dashboard's range (no timeFrom) and read ``derived.*`` numbers."""
    found = {}
    for panel, target in infinity_targets(DASHBOARDS["voxmon-overview.json"], SUMMARY_PATH):
        params = [(p["key"], p["value"]) for p in target["url_options"]["params"]]
        assert params == [("start", "${__timeFrom}"), ("end", "${__timeTo}")]
        assert (target["root_selector"], target["parser"], "timeFrom" in panel) == (
            "row", "backend", False,
        )  # fmt: skip
        assert all(c["type"] == "number" for c in target["columns"])
        found[panel["title"]] = [c["selector"] for c in target["columns"]]
    assert found == {
        "Quality (dashboard range)": [
            "derived.auto_resolution_rate",
            "derived.disambiguation_rate",
            "derived.transcript_confidence_avg",
            "derived.claim_confidence_avg",
        ],
        "Cost per note (dashboard range)": ["derived.avg_cost_per_artifact_usd"],
    }


def test_organisation_table_shows_names_from_the_orgs_endpoint() -> None:
    ((panel, target),) = infinity_targets(DASHBOARDS["voxmon-organisations.json"], ORGS_PATH)
    params = {p["key"]: p["value"] for p in target["url_options"]["params"]}
    assert params == {"period": "hourly", "start": "${__timeFrom}", "end": "${__timeTo}",
                      "limit": "100"}  # fmt: skip
    assert (panel["type"], panel["timeFrom"], target["root_selector"]) == ("table", "7d", "orgs")
    columns = [(c["selector"], c["type"]) for c in target["columns"]]
    assert columns[:2] == [("name", "string"), ("org_id", "string")]
    assert {selector for selector, kind in columns[2:] if kind == "number"} == {
        "received", "completed", "failed", "failure_rate", "ai_cost_usd",
        "end_to_end_avg_ms", "end_to_end_p95_ms",
    }  # fmt: skip


def test_end_to_end_alert_panel_draws_the_alert_threshold() -> None:
    (panel,) = [p for p in panels(DASHBOARDS["voxmon-overview.json"]) if p["id"] == 28]
    exprs = [t["expr"] for t in panel["targets"]]
    assert exprs[0] == "voice_pipeline:end_to_end_latency_window_seconds:p95"
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [step["value"] for step in steps] == [None, 3600]
    rules = (ROOT / "alert_rules.yml").read_text(encoding="utf-8")
    assert f"{exprs[0]} > 3600\n" in rules


def test_today_cards_cover_the_utc_day() -> None:
    overview = DASHBOARDS["voxmon-overview.json"]
    today = [p for p in panels(overview) if p.get("timeFrom") == "now/d"]
    assert [p["title"] for p in today] == ["Notes today", "AI cost today"]
    assert overview["timezone"] == "utc"
    assert all("[$__range]" in t["expr"] for p in today for t in p["targets"])


def test_organisations_dashboard_has_the_org_variable() -> None:
    org = variable(DASHBOARDS["voxmon-organisations.json"], "org")
    assert org["definition"] == "label_values(voice_pipeline_artifacts_total, org_id)"
    assert org["query"]["query"] == org["definition"]
    assert (org["multi"], org["includeAll"]) == (False, False)
    exprs = [t["expr"] for _, t in targets(DASHBOARDS["voxmon-organisations.json"], PROMETHEUS)]
    assert sum('org_id="$org"' in expr for expr in exprs) == 7


def test_provisioning_declares_the_datasource_uids_the_dashboards_default_to() -> None:
    datasources = (PROVISIONING / "datasources" / "voxmon.yml").read_text(encoding="utf-8")
    assert re.findall(r"^\s+uid: (\S+)$", datasources, re.MULTILINE) == [
        "prometheus",
        "voxmon-history",
    ]
    assert re.findall(r"^\s+type: (\S+)$", datasources, re.MULTILINE) == [PROMETHEUS, INFINITY]
    providers = (PROVISIONING / "dashboards" / "voxmon.yml").read_text(encoding="utf-8")
    assert "path: /var/lib/grafana/dashboards/voxmon" in providers
    compose = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert "./grafana/dashboards:/var/lib/grafana/dashboards/voxmon:ro" in compose
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in compose
