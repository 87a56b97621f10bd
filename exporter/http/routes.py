"""Every route: method, path, handler and the token scope it needs (None: open). ``HEAD``
answers like ``GET`` without the body (aiohttp drops it), for probes that only want a 200."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from exporter.http import (
    artifacts,
    feed,
    health,
    history,
    ingest,
    live,
    orgs,
    rollups,
    status,
    summary,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
INGEST_PATH = "/v1/events"

ROUTES: tuple[tuple[str, str, Handler, str | None], ...] = (
    ("POST", INGEST_PATH, ingest.post_events, "ingest"),
    ("GET", INGEST_PATH, feed.get_feed, "read"),
    ("GET", "/v1/metrics/realtime", live.get_realtime, "read"),
    ("GET", "/v1/metrics/history", history.get_history, "read"),
    ("GET", "/v1/metrics/stages", history.get_stages, "read"),
    ("GET", "/v1/metrics/orgs", history.get_org_breakdown, "read"),
    ("GET", "/v1/metrics/summary", summary.get_summary, "read"),
    ("GET", "/v1/orgs", orgs.get_orgs, "read"),
    ("GET", "/v1/orgs/{org_id}", orgs.get_org, "read"),
    ("PUT", "/v1/orgs/{org_id}", orgs.put_org, "admin"),
    ("GET", "/v1/artifacts", artifacts.get_artifacts, "read"),
    ("GET", "/v1/artifacts/{artifact_id}/events", artifacts.get_timeline, "read"),
    ("GET", "/v1/rollups", rollups.get_rollups, "read"),
    ("POST", "/v1/rollups/{job}/run", rollups.post_rollup_run, "admin"),
    ("GET", "/metrics", live.get_metrics, "metrics"),
    ("HEAD", "/metrics", live.get_metrics, "metrics"),
    ("GET", "/", status.get_status, None),
    ("GET", "/openapi.json", health.get_openapi, None),
    ("GET", "/healthz", health.get_healthz, None),
    ("HEAD", "/healthz", health.get_healthz, None),
    ("GET", "/readyz", health.get_readyz, None),
)
SCOPE_OF = {(method, path): scope for method, path, _, scope in ROUTES}


ExpectHandler = Callable[[web.Request], Awaitable[web.StreamResponse | None]]


def add_routes(app: web.Application, expect: ExpectHandler) -> None:
    """Every route, each answering an ``Expect`` header with ``expect``."""
    for method, path, handler, _scope in ROUTES:
        app.router.add_route(method, path, handler, expect_handler=expect)
