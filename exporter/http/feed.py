"""``GET /v1/events``: the recent-events feed, newest received first, within event
retention, filtered by organisation, event type or artifact, paged by an opaque cursor."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec
from aiohttp import web

from exporter.catalog import EVENT_TYPES
from exporter.http.context import BACKEND, CLOCK, SETTINGS, json_response
from exporter.http.params import bad, parse_int, parse_org, reject_unknown
from exporter.http.responses import StoredEvent
from exporter.records import EventFilter, FeedPosition
from exporter.timestamps import HOUR_MS, datetime_to_ms, format_rfc3339

MAX_LIMIT = 1000
_CURSOR = re.compile(r"([0-9]{1,18})-([0-9]{1,18})")  # fits SQLite's 64-bit INTEGER


class FeedEvent(StoredEvent, kw_only=True):
    """One stored event with its note and arrival time; ``metadata`` exactly as sent."""

    artifact_id: str | None
    received_at: str
    metadata: msgspec.Raw | None


class Feed(msgspec.Struct):
    """A page, newest received first; ``next`` continues after its last event (None: the
    walk reached the oldest event in retention)."""

    events: list[FeedEvent]
    next: str | None


async def get_feed(request: web.Request) -> web.Response:
    """``GET /v1/events?limit=&org_id=&event_type=&artifact_id=&before=``."""
    query = request.query
    reject_unknown(query, ("limit", "org_id", "event_type", "artifact_id", "before"))
    limit = parse_int("limit", query.get("limit", "100"), 1, MAX_LIMIT)
    before = _position(query.get("before"))
    now_ms = datetime_to_ms(request.app[CLOCK].now())
    keep_ms = request.app[SETTINGS].event_retention_hours * HOUR_MS
    filters = EventFilter(now_ms - keep_ms, parse_org(query), *_type_and_artifact(query))
    rows = await request.app[BACKEND].reads.run(
        lambda s: s.events.recent(filters, before, limit + 1)
    )
    page = rows[:limit]
    more = len(rows) > limit
    cursor = f"{page[-1]['received_ms']}-{page[-1]['seq']}" if more else None
    return json_response(Feed([_event(row) for row in page], cursor))


def _position(text: str | None) -> FeedPosition | None:
    if text is None:
        return None
    match = _CURSOR.fullmatch(text)
    if match is None:
        raise bad("before", "not a cursor: pass the 'next' value of the previous page")
    return FeedPosition(int(match[1]), int(match[2]))


def _type_and_artifact(query: Mapping[str, str]) -> tuple[str | None, str | None]:
    event_type, artifact_id = query.get("event_type"), query.get("artifact_id")
    if event_type is not None and event_type not in EVENT_TYPES:
        raise bad("event_type", f"unknown event type; one of {', '.join(sorted(EVENT_TYPES))}")
    if artifact_id is not None and not 1 <= len(artifact_id) <= 128:
        raise bad("artifact_id", "must be 1 to 128 characters")
    return event_type, artifact_id


_NOT_FIELDS = ("seq", "ts_ms", "received_ms", "metadata")
"""Row columns that are not answered as they are (the position, times as ms, raw JSON)."""


def _event(row: dict[str, Any]) -> FeedEvent:
    metadata = row["metadata"]
    fields = {k: v for k, v in row.items() if k not in _NOT_FIELDS}
    return FeedEvent(
        **fields,
        timestamp=format_rfc3339(row["ts_ms"]),
        received_at=format_rfc3339(row["received_ms"]),
        metadata=None if metadata is None else msgspec.Raw(metadata),
    )
