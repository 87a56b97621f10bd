"""Grafana dashboards and provisioning: stable uids, unique panel ids, units, data sources.

Whether each panel's PromQL runs and returns data is proven against a real Prometheus in
``tests/test_prometheus_integration.py``; both read them through ``tests/dashboards.py``.
"""

from __future__ import annotations

import re

import pytest

from tests.dashboards import DASHBOARDS, INFINITY, PROMETHEUS, ROOT, panels, targets, variable

PROVISIONING = ROOT / "grafana" / "provisioning"
HISTORY_PATH = "/v1/metrics/history"

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
        "voxmon-daemon-health.json": (17, 0),
        "voxmon-organisations.json": (8, 4),
        "voxmon-overview.json": (15, 4),
        "voxmon-stages.json": (10, 3),
    }


def test_history_panels_read_the_history_api_over_their_own_range() -> None:
    """Infinity queries: GET /v1/metrics/history with the panel's time range (Infinity's
    backend macros ``${__timeFrom}``/``${__timeTo}``, epoch ms, which follow a panel's
    relative-time override, unlike Grafana's ``${__from}``), rows under ``rows``, time
    from ``period_start``, values from ``parts.*`` and ``derived.*``."""
    for dashboard in DASHBOARDS.values():
        for panel, target in targets(dashboard, INFINITY):
            params = {p["key"]: p["value"] for p in target["url_options"]["params"]}
            assert target["url"] == HISTORY_PATH
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
