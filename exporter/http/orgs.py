"""Organisations: every one seen in events or given a display name, with its name or null
(``GET /v1/orgs[/{org_id}]``), and setting a name (``PUT /v1/orgs/{org_id}``)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from exporter.errors import BadRequest, NotFound
from exporter.http.context import BACKEND, CLOCK, SETTINGS, json_response
from exporter.http.params import bad, parse_int, reject_unknown
from exporter.http.request import read_body
from exporter.http.responses import Org, Orgs
from exporter.storage.base import Store
from exporter.timestamps import datetime_to_ms


class OrgName(msgspec.Struct, forbid_unknown_fields=True):
    """The body of ``PUT /v1/orgs/{org_id}``."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


async def put_org(request: web.Request) -> web.Response:
    """Set an organisation's display name (admin)."""
    org_id = request.match_info["org_id"]
    if not 1 <= len(org_id) <= 128 or org_id.isspace():
        raise bad("org_id", "must be 1 to 128 characters, not blank (as ingest requires)")
    settings = request.app[SETTINGS]
    raw = await read_body(request, settings.max_body_bytes, settings.body_timeout_s)
    try:
        body = msgspec.json.decode(raw, type=OrgName)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise BadRequest(f"body: {exc}", [{"field": "name", "message": str(exc)}]) from None
    now_ms = datetime_to_ms(request.app[CLOCK].now())
    await request.app[BACKEND].writes.run(_put_name, org_id, body.name, now_ms)
    return json_response(Org(org_id, body.name, True))


def _put_name(store: Store, org_id: str, name: str, now_ms: int) -> None:
    with store.transaction():
        store.orgs.put_org_name(org_id, name, now_ms)


async def get_orgs(request: web.Request) -> web.Response:
    """Organisations by id, named or not, ``limit`` per page after ``cursor``."""
    reject_unknown(request.query, ("limit", "cursor"))
    limit = parse_int("limit", request.query.get("limit", "1000"), 1, 10_000)
    cursor = request.query.get("cursor")
    found = await request.app[BACKEND].reads.run(lambda s: s.orgs.list_orgs(cursor, limit + 1))
    page = found[:limit]
    next_cursor = page[-1].org_id if len(found) > limit else None
    return json_response(Orgs([Org.of(entry) for entry in page], next_cursor))


async def get_org(request: web.Request) -> web.Response:
    reject_unknown(request.query, ())
    org_id = request.match_info["org_id"]
    entry = await request.app[BACKEND].reads.run(lambda s: s.orgs.find_org(org_id))
    if entry is None:
        raise NotFound(f"organisation {org_id!r} was never seen in an event nor named")
    return json_response(Org.of(entry))
