"""Snapshot reports over a range: ``/v1/metrics/history``, ``/v1/metrics/stages`` and
``/v1/metrics/orgs``. Ranges merge parts and digests exactly; no ``org_id`` means platform
rows only, never a mix."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from exporter.http.context import REPORTS, SETTINGS, json_response
from exporter.http.params import parse_int, parse_org, parse_range, reject_unknown
from exporter.http.responses import History, OrgBreakdown, Stages
from exporter.records import Range
from exporter.timestamps import format_rfc3339

_RANGE = ("period", "start", "end")


def _range_body(found: Range, org_id: str | None) -> dict[str, Any]:
    """The fields every range report starts with (``responses.RangeBody``)."""
    return {
        "period": found.period,
        "start": format_rfc3339(found.start_ms),
        "end": format_rfc3339(found.end_ms),
        "scope": "org" if org_id else "platform",
        "org_id": org_id,
    }


def _scope(request: web.Request) -> tuple[Range, str | None]:
    reject_unknown(request.query, (*_RANGE, "org_id"))
    found = parse_range(request.query, request.app[SETTINGS].max_range_rows)
    return found, parse_org(request.query)


async def get_history(request: web.Request) -> web.Response:
    """Snapshots of one scope, ascending, with parts and derived fields."""
    found, org_id = _scope(request)
    rows = await request.app[REPORTS].history(found.period, found.start_ms, found.end_ms, org_id)
    return json_response(History(**_range_body(found, org_id), rows=rows))


async def get_stages(request: web.Request) -> web.Response:
    """Per stage over the range, from merged parts and digests of one scope."""
    found, org_id = _scope(request)
    stages = await request.app[REPORTS].stages(found.period, found.start_ms, found.end_ms, org_id)
    return json_response(Stages(**_range_body(found, org_id), stages=stages))


async def get_org_breakdown(request: web.Request) -> web.Response:
    """Per organisation over the range, busiest first."""
    reject_unknown(request.query, (*_RANGE, "limit"))
    found = parse_range(request.query, request.app[SETTINGS].max_range_rows)
    limit = parse_int("limit", request.query.get("limit", "100"), 1, 1000)
    orgs = await request.app[REPORTS].orgs(found.period, found.start_ms, found.end_ms, limit)
    return json_response(OrgBreakdown(**_range_body(found, None), orgs=orgs))
