"""Liveness, readiness and the OpenAPI document: the open endpoints."""

from __future__ import annotations

from aiohttp import web

from exporter.errors import VoxmonError
from exporter.http import openapi
from exporter.http.context import HEALTH, READINESS, json_response
from exporter.http.responses import Status

_OPENAPI = openapi.document()


async def get_openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document (built once)."""
    return json_response(_OPENAPI)


async def get_healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return json_response(Status("ok"))


async def get_readyz(request: web.Request) -> web.Response:
    """Readiness: database open, state restored, writer running, and storage able to commit
    (503 with the reason while it cannot; it recovers by itself)."""
    if not request.app[READINESS].started:
        raise NotReady("voxmon is starting or stopping")
    health = request.app[HEALTH]
    if not health.healthy:
        refusal = health.refusal()
        raise NotReady(refusal.message, **refusal.headers)
    return json_response(Status("ready"))


class NotReady(VoxmonError):
    status = 503
    code = "not_ready"
