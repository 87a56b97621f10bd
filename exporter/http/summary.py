"""``GET /v1/metrics/summary``: one row merged over a range from the snapshots (same part
and derived field names as a history row), and the part of the range they do not cover."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from exporter.http.context import CLOCK, REPORTS, SETTINGS, json_response
from exporter.http.params import bad, parse_bounds, parse_org, reject_unknown
from exporter.records import RangeSummary
from exporter.timestamps import HOUR_MS, MAX_MS, datetime_to_ms, format_rfc3339

LAST_END_MS = MAX_MS - MAX_MS % HOUR_MS
"""The latest ``end`` whose widening to a whole hour can still be written as a date."""


class SummaryRow(msgspec.Struct):
    """Like a history row; ``period_start``/``period_end`` are the whole hours covered."""

    period_start: str
    period_end: str
    parts: dict[str, Any]
    derived: dict[str, float]


class NotRolledUp(msgspec.Struct):
    """Whole hours the row does not (fully) include: ``open`` (not ended), ``not_rolled_up``
    (ended, no snapshot yet, or pruned) or ``late_events`` (snapshot older than late
    events still waiting for re-aggregation)."""

    start: str
    end: str
    reason: str


class Windows(msgspec.Struct):
    """How many snapshots were merged: daily for whole days, hourly at the edges."""

    daily: int
    hourly: int


class Summary(msgspec.Struct):
    """The response body."""

    start: str
    end: str
    scope: str
    org_id: str | None
    row: SummaryRow
    windows: Windows
    not_rolled_up: list[NotRolledUp]


async def get_summary(request: web.Request) -> web.Response:
    """``GET /v1/metrics/summary?start=&end=[&org_id=]``; bounds widen to whole UTC hours."""
    reject_unknown(request.query, ("start", "end", "org_id"))
    start_ms, end_ms = _bounds(request.query, request.app[SETTINGS].max_range_rows)
    org_id = parse_org(request.query)
    now_ms = datetime_to_ms(request.app[CLOCK].now())
    found = await request.app[REPORTS].summary(start_ms, end_ms, org_id, now_ms)
    return json_response(_body(found, start_ms, end_ms, org_id))


def _bounds(query: Any, max_hours: int) -> tuple[int, int]:
    start, end = parse_bounds(query)
    if end > LAST_END_MS:
        raise bad("end", f"at most {format_rfc3339(LAST_END_MS)} (the range widens to whole hours)")
    hours = -(-end // HOUR_MS) - start // HOUR_MS
    if hours > max_hours:
        raise bad("end", f"the range spans {hours} hours; at most {max_hours} (max_range_rows)")
    return start, end


def _body(found: RangeSummary, start_ms: int, end_ms: int, org_id: str | None) -> Summary:
    row = SummaryRow(
        format_rfc3339(found.start_ms), format_rfc3339(found.end_ms), found.parts, found.derived
    )
    gaps = [
        NotRolledUp(format_rfc3339(g.start_ms), format_rfc3339(g.end_ms), g.reason)
        for g in found.gaps
    ]
    return Summary(
        format_rfc3339(start_ms), format_rfc3339(end_ms), "org" if org_id else "platform",
        org_id, row, Windows(found.daily_windows, found.hourly_windows), gaps,
    )  # fmt: skip
