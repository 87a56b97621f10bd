"""``POST /v1/events``: validate every item, commit the valid ones, then answer with what
was accepted, deduplicated, rejected (naming each item's field) or warned about."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping

from aiohttp import web
from msgspec import UNSET, UnsetType

from exporter.http.context import CLOCK, METRICS, SETTINGS, WRITER, json_response
from exporter.http.request import read_body
from exporter.http.responses import FieldProblem, IngestResult, ItemErrors
from exporter.ingest.body import decompress, split_items
from exporter.ingest.commit import CommitResult
from exporter.model import Event, FieldError, ItemWarning, Rejection
from exporter.selfmetrics import SelfMetrics
from exporter.settings import Settings
from exporter.timestamps import datetime_to_ms, format_rfc3339
from exporter.validation import Horizon, validate_items

LISTED_ITEMS = 100
"""Rejections (and warnings) listed in full in one response; the rest are counted in
``rejected_not_listed`` (``warnings_not_listed``), so 10,000 bad items cost a small answer."""


INLINE_BYTES = 16 * 1024
INLINE_ITEMS = 32
"""A body is parsed on the event loop only when it is not compressed, at most
``INLINE_BYTES`` long and holds at most ``INLINE_ITEMS`` objects (counted as ``{``, which can
only overcount): validation costs up to ~100 µs an item, so the loop is held a few ms at
most. Anything else (10,000 ``{}`` items fit in 30 KB) goes to a worker thread."""


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
    settings, metrics, writer = request.app[SETTINGS], request.app[METRICS], request.app[WRITER]
    with writer.arriving():  # counted on leaving, refused or not: a waiting commit re-checks
        events, rejections, warnings = await _read_and_parse(request, settings)
    _count_rejections(metrics, rejections)
    result = CommitResult(0, 0)
    if events:
        result = await writer.submit(events)
        metrics.events.labels("accepted").inc(result.accepted)
        metrics.events.labels("duplicate").inc(result.duplicates)
        pruned = _pruned_rejections(events, rejections, result)
        _count_rejections(metrics, pruned)
        rejections = sorted([*rejections, *pruned], key=lambda r: r.index)
        for warning in warnings:  # counted once committed, like the accepted events
            metrics.warnings.labels(warning.reason).inc()
    body_out = IngestResult(
        accepted=result.accepted,
        duplicates=result.duplicates,
        rejected=[_item_body(r) for r in rejections[:LISTED_ITEMS]],
        warnings=[_item_body(w) for w in warnings[:LISTED_ITEMS]],
        rejected_not_listed=_not_listed(len(rejections)),
        warnings_not_listed=_not_listed(len(warnings)),
    )
    return json_response(body_out, status=200 if result.accepted or result.duplicates else 400)


async def _read_and_parse(
    request: web.Request, settings: Settings
) -> tuple[list[Event], list[Rejection], list[ItemWarning]]:
    body = await read_body(request, settings.max_body_bytes, settings.body_timeout_s)
    now_ms = datetime_to_ms(request.app[CLOCK].now())
    parse = functools.partial(_parse, body, request.headers.copy(), settings, now_ms)
    if _inline(body, request.headers):
        return parse()
    # inflating and validating megabytes off the event loop keeps other clients served
    return await asyncio.to_thread(parse)


def _not_listed(count: int) -> int | UnsetType:
    """Items beyond the listed ones; absent from the answer when all are listed."""
    return count - LISTED_ITEMS if count > LISTED_ITEMS else UNSET


def _inline(body: bytes, headers: Mapping[str, str]) -> bool:
    """Cheap enough to parse on the event loop (see ``INLINE_ITEMS``)."""
    return (
        len(body) <= INLINE_BYTES
        and not headers.get("Content-Encoding")
        and body.count(b"{") <= INLINE_ITEMS
    )


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


def _count_rejections(metrics: SelfMetrics, rejections: list[Rejection]) -> None:
    if rejections:
        metrics.events.labels("rejected").inc(len(rejections))
    for rejection in rejections:
        metrics.rejected.labels(rejection.reason).inc()


def _item_body(item: Rejection | ItemWarning) -> ItemErrors:
    errors = [FieldProblem(e.field, e.message) for e in item.errors]
    return ItemErrors(item.index, item.event_id, errors)
