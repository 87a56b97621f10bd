"""HTTP handlers for ingest, realtime counters, /metrics and health. Handlers raise
``VoxmonError``s; the error middleware renders them."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from exporter.catalog import WINDOW_COUNTERS
from exporter.clock import Clock
from exporter.errors import BadRequest, PayloadTooLarge, RequestTimeout, VoxmonError
from exporter.health import StorageHealth
from exporter.http import openapi
from exporter.http.auth import Authenticator
from exporter.http.params import parse_org
from exporter.ingest.body import decompress, split_items
from exporter.ingest.writer import CommitResult, IngestWriter
from exporter.live.orgs import OTHER_ORG
from exporter.live.state import LiveState
from exporter.live.windows import PLATFORM, window_bounds
from exporter.model import Event, FieldError, ItemWarning, Rejection
from exporter.selfmetrics import SelfMetrics
from exporter.settings import Settings
from exporter.timestamps import datetime_to_ms, format_rfc3339
from exporter.validation import Horizon, validate_items
from rollup.metrics import JobRunsCollector

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class Services:
    """What handlers need; built by ``app.create_app``, filled in at start-up."""

    settings: Settings
    clock: Clock
    registry: CollectorRegistry
    metrics: SelfMetrics
    live: LiveState
    auth: Authenticator
    job_runs: JobRunsCollector
    writer: IngestWriter | None = None
    scheduler: Any = None
    """The rollup scheduler (set by the composition root; typed loosely so the HTTP layer
    does not import ``rollup``)."""
    ready: bool = False
    run_scheduler: bool = True
    read_side: Any = None
    """``queries.ReadSide``, set at start-up once both database connections are open."""
    before_scrape: Callable[[], Awaitable[None]] | None = None
    """Refreshes what ``/metrics`` reads from storage (job runs recorded by the CLI too)."""
    health: StorageHealth | None = None
    """Whether storage can commit; set at start-up once the database is open."""


SERVICES = web.AppKey("services", Services)
_encode = msgspec.json.encode


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encode(body), status=status, content_type="application/json")


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


def reject_unknown_params(request: web.Request, allowed: Iterable[str]) -> None:
    unknown = sorted(set(request.query) - set(allowed))
    if unknown:
        raise BadRequest(
            f"unknown query parameter {unknown[0]!r}; allowed: {sorted(allowed)}",
            [{"field": name, "message": "unknown parameter"} for name in unknown],
        )


LISTED_ITEMS = 100
"""Rejections (and warnings) listed in full in one response; the rest are counted in
``rejected_not_listed`` (``warnings_not_listed``), so 10,000 bad items cost a small answer."""


INLINE_BYTES = 64 * 1024
"""Bodies up to this size (not compressed) are parsed on the event loop; larger ones, and
every gzip body, in a worker thread."""


def _parse(
    body: bytes, headers: Mapping[str, str], settings: Settings, now_ms: int
) -> tuple[list[Event], list[Rejection], list[ItemWarning]]:
    """Inflate, split and validate one ingest body (no I/O, safe in a thread)."""
    encoding = headers.get("Content-Encoding", "")
    body = decompress(body, encoding, settings.max_body_bytes, settings.max_batch)
    items = split_items(body, headers.get("Content-Type", ""), settings.max_batch)
    horizon = Horizon(
        settings.future_tolerance_s * 1000, settings.event_retention_hours * 3_600_000
    )
    return validate_items(
        items, now_ms, horizon, settings.max_duration_ms, float(settings.max_event_cost_usd)
    )


async def post_events(request: web.Request) -> web.Response:
    """``POST /v1/events``: validate every item, commit the valid ones, then answer."""
    svc = services(request)
    settings = svc.settings
    body = await read_body(request, settings.max_body_bytes, settings.body_timeout_s)
    parse = functools.partial(
        _parse, body, request.headers.copy(), settings, datetime_to_ms(svc.clock.now())
    )
    if len(body) <= INLINE_BYTES and not request.headers.get("Content-Encoding"):
        events, rejections, warnings = parse()
    else:  # inflating and validating megabytes off the event loop keeps other clients served
        events, rejections, warnings = await asyncio.to_thread(parse)
    _count_rejections(svc.metrics, rejections)
    result = CommitResult(0, 0)
    if events:
        assert svc.writer is not None
        result = await svc.writer.submit(events)
        svc.metrics.events.labels("accepted").inc(result.accepted)
        svc.metrics.events.labels("duplicate").inc(result.duplicates)
        pruned = _pruned_rejections(events, rejections, result)
        _count_rejections(svc.metrics, pruned)
        rejections = sorted([*rejections, *pruned], key=lambda r: r.index)
        for warning in warnings:  # counted once committed, like the accepted events
            svc.metrics.warnings.labels(warning.reason).inc()
    body_out: dict[str, Any] = {
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "rejected": [_item_body(r) for r in rejections[:LISTED_ITEMS]],
        "warnings": [_item_body(w) for w in warnings[:LISTED_ITEMS]],
    }
    for name, count in (("rejected", len(rejections)), ("warnings", len(warnings))):
        if count > LISTED_ITEMS:
            body_out[f"{name}_not_listed"] = count - LISTED_ITEMS
    return json_response(body_out, status=200 if result.accepted or result.duplicates else 400)


def _pruned_rejections(
    events: list[Event], rejections: list[Rejection], result: CommitResult
) -> list[Rejection]:
    """Rejections for events the writer refused because retention had pruned their hour's
    raw events or their day's snapshots (a cleanup that ran with a shorter retention than
    this daemon's horizon)."""
    if not result.pruned:
        return []
    refused = {r.index for r in rejections}
    indexes = [i for i in range(len(events) + len(rejections)) if i not in refused]
    message = (
        f"timestamp is before {format_rfc3339(result.events_from_ms)}: retention pruned"
        " what snapshots before it are computed from, so its hour can no longer be rolled up"
    )
    return [
        Rejection(indexes[p], events[p].event_id, (FieldError("timestamp", message),), "too_old")
        for p in result.pruned
    ]


async def read_body(request: web.Request, limit: int, timeout_s: float) -> bytes:
    """The whole request body: 413 beyond ``limit`` bytes, 408 when it has not arrived
    within ``timeout_s`` (a client trickling its body holds a connection, not the daemon)."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"body is {request.content_length} bytes; at most {limit}")
    try:
        async with asyncio.timeout(timeout_s):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"body exceeds max_body_bytes ({limit} bytes)") from None
    except TimeoutError:
        raise RequestTimeout(
            f"the request body did not arrive within {timeout_s:g} s (body_timeout_s)",
            Connection="close",
        ) from None


def _count_rejections(metrics: SelfMetrics, rejections: list[Rejection]) -> None:
    if rejections:
        metrics.events.labels("rejected").inc(len(rejections))
    for rejection in rejections:
        metrics.rejected.labels(rejection.reason).inc()


def _item_body(item: Rejection | ItemWarning) -> dict[str, Any]:
    return {
        "index": item.index,
        "event_id": item.event_id,
        "errors": [{"field": e.field, "message": e.message} for e in item.errors],
    }


async def get_realtime(request: web.Request) -> web.Response:
    """``GET /v1/metrics/realtime[?org_id=]``: the 60-minute counters of one scope. An
    organisation beyond ``max_live_orgs`` has no live window of its own: 404
    ``org_not_live`` (its events count in ``org_id=__other__`` and in full in snapshots)."""
    reject_unknown_params(request, ("org_id",))
    svc = services(request)
    org_id = parse_org(request.query)
    if org_id and svc.live.orgs.live_scope(org_id) not in (org_id, None):
        raise _OrgNotLive(org_id, svc.live.orgs.max_live_orgs)
    now_ms = datetime_to_ms(svc.clock.now())
    bounds = window_bounds(now_ms)
    totals = svc.live.windows.totals(org_id or PLATFORM, now_ms)
    body: dict[str, Any] = {
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
    return json_response(body)


async def get_metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text or OpenMetrics, by the Accept header."""
    svc = services(request)
    if svc.before_scrape is not None:
        await svc.before_scrape()
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    payload = encoder(svc.registry)
    response = web.Response(body=payload)
    response.headers["Content-Type"] = content_type
    return response


async def get_openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document (built once)."""
    return json_response(_OPENAPI)


_OPENAPI = openapi.document()


async def get_healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return json_response({"status": "ok"})


async def get_readyz(request: web.Request) -> web.Response:
    """Readiness: database open, state restored, writer running, and storage able to commit
    (503 with the reason while it cannot; it recovers by itself)."""
    svc = services(request)
    if not svc.ready:
        raise _NotReady("voxmon is starting or stopping")
    if svc.health is not None and not svc.health.healthy:
        refusal = svc.health.refusal()
        raise _NotReady(refusal.message, **refusal.headers)
    return json_response({"status": "ready"})


class _NotReady(VoxmonError):
    status = 503
    code = "not_ready"


class _OrgNotLive(VoxmonError):
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
