"""The shipped Grafana dashboards, read for the tests: panels (rows unfolded), queries by
data source type, template variables."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = ROOT / "grafana" / "dashboards"
PROMETHEUS = "prometheus"
INFINITY = "yesoreyeram-infinity-datasource"
HISTORY_PATH = "/v1/metrics/history"
SUMMARY_PATH = "/v1/metrics/summary"
ORGS_PATH = "/v1/metrics/orgs"


def load_dashboards() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(DASHBOARD_DIR.glob("*.json"))
    }


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def targets(
    dashboard: dict[str, Any], kind: str
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """``(panel, target)`` for every query of one data source type."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            if (target.get("datasource") or panel["datasource"])["type"] == kind:
                yield panel, target


def infinity_targets(
    dashboard: dict[str, Any], url: str
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """``(panel, target)`` for every Infinity query of one voxmon endpoint."""
    return ((p, t) for p, t in targets(dashboard, INFINITY) if t["url"] == url)


def variable(dashboard: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [v for v in dashboard["templating"]["list"] if v["name"] == name]
    assert len(found) == 1, f"{dashboard['uid']}: variable {name!r} x{len(found)}"
    return found[0]


DASHBOARDS = load_dashboards()
"""File name -> dashboard JSON, read once."""
