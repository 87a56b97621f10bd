"""The live surfaces: ``GET /v1/metrics/realtime`` (the 60-minute counters of one scope)
and ``GET /metrics`` (Prometheus text or OpenMetrics, by the Accept header)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from exporter.catalog import PROCESSING_STAGES, WINDOW_COUNTERS
from exporter.errors import VoxmonError
from exporter.http.context import CLOCK, LIVE, REGISTRY, ROLLUPS, json_response
from exporter.http.params import parse_org, reject_unknown
from exporter.http.responses import Realtime, WindowLatency
from exporter.live.latency import QUANTILES, LatencyWindow
from exporter.live.orgs import OTHER_ORG
from exporter.live.tally import END_TO_END_SERIES
from exporter.live.windows import PLATFORM, window_bounds
from exporter.timestamps import datetime_to_ms, format_rfc3339


async def get_realtime(request: web.Request) -> web.Response:
    """``GET /v1/metrics/realtime[?org_id=]``: the 60-minute counters of one scope (and,
    for the platform, the window's latency quantiles). An
    organisation beyond ``max_live_orgs`` has no live window of its own: 404
    ``org_not_live`` (its events count in ``org_id=__other__`` and in full in snapshots)."""
    reject_unknown(request.query, ("org_id",))
    live = request.app[LIVE]
    org_id = parse_org(request.query)
    if org_id and live.orgs.live_scope(org_id) not in (org_id, None):
        raise OrgNotLive(org_id, live.orgs.max_live_orgs)
    now_ms = datetime_to_ms(request.app[CLOCK].now())
    bounds = window_bounds(now_ms)
    totals = live.windows.totals(org_id or PLATFORM, now_ms)
    body: dict[str, object] = {
        "scope": "org" if org_id else "platform",
        "org_id": org_id,
        "window_start": format_rfc3339(bounds.start_ms),
        "window_end": format_rfc3339(bounds.end_ms),
    }
    for name in WINDOW_COUNTERS:
        value = totals[name]
        body[f"{name}_1h"] = value if name == "ai_cost_usd" else int(value)
    done, failed = totals["artifacts_completed"], totals["artifacts_failed"]
    body["failure_rate_1h"] = failed / (done + failed) if done + failed else 0.0
    body["stage_latency_1h"] = (
        None
        if org_id
        else {stage: _latency(live.latency, stage, now_ms) for stage in PROCESSING_STAGES}
    )
    body["end_to_end_latency_1h"] = (
        None if org_id else _latency(live.latency, END_TO_END_SERIES, now_ms)
    )
    return json_response(Realtime(**body))


def _latency(windows: LatencyWindow, series: str, now_ms: int) -> WindowLatency | None:
    count, quantiles = windows.quantiles(series, now_ms)
    if not count:
        return None
    p50, p95, p99 = (quantiles[q] for q in QUANTILES)
    return WindowLatency(count=count, p50_s=p50, p95_s=p95, p99_s=p99)


async def get_metrics(request: web.Request) -> web.Response:
    """``GET /metrics``; job run families are refreshed from storage first (the CLI's
    runs count too)."""
    await request.app[ROLLUPS].refresh_metrics()
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = web.Response(body=encoder(request.app[REGISTRY]))
    response.headers["Content-Type"] = content_type
    return response


class OrgNotLive(VoxmonError):
    status = 404
    code = "org_not_live"

    def __init__(self, org_id: str, cap: int) -> None:
        super().__init__(
            f"organisation {org_id!r} has no live window: voxmon keeps one for the first"
            f" {cap} organisations it sees (max_live_orgs) and counts later ones together as"
            f" org_id={OTHER_ORG}; its hourly and daily snapshots are exact"
            " (GET /v1/metrics/history?org_id=...)",
            [{"field": "org_id", "message": f"not tracked live (beyond max_live_orgs={cap})"}],
        )
