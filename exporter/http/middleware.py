"""The two middlewares: auth by route scope, and errors rendered as the JSON error body
(``VoxmonError``s, aiohttp's own HTTP errors, and anything unexpected, counted), with the
ingest request count and a ``Server-Timing`` header; and the ``Expect`` handler, which
aiohttp runs before the middlewares."""

from __future__ import annotations

import logging

from aiohttp import web

from exporter.errors import Unavailable, VoxmonError
from exporter.health import StorageHealth
from exporter.http.context import AUTH, CLOCK, METRICS, json_response
from exporter.http.responses import Error, ErrorDetail
from exporter.http.routes import INGEST_PATH, SCOPE_OF, Handler

log = logging.getLogger(__name__)

_HTTP_CODES = {413: "payload_too_large", 415: "unsupported_media_type"}
"""aiohttp's own errors under the codes voxmon uses for the same refusals."""


@web.middleware
async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    resource = request.match_info.route.resource
    path = resource.canonical if resource is not None else request.path
    scope = SCOPE_OF.get((request.method, path))
    if scope is not None:
        request.app[AUTH].check(request.headers.get("Authorization"), scope)
    return await handler(request)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    clock = request.app[CLOCK]
    started = clock.monotonic()
    try:
        response = await handler(request)
    except VoxmonError as exc:
        response = _voxmon_error(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _http_error(exc)
    except Exception as exc:  # never a plain-text 500: render it, count it, log it
        response = _unexpected(request, exc)
    if request.path == INGEST_PATH and request.method == "POST":  # GET is the events feed
        request.app[METRICS].requests.labels(str(response.status)).inc()
    if not response.prepared:
        elapsed_ms = (clock.monotonic() - started) * 1000
        response.headers["Server-Timing"] = f"app;dur={elapsed_ms:.3f}"
    return response


async def expect(request: web.Request) -> web.StreamResponse | None:
    """The ``expect_handler`` of every route: ``Expect: 100-continue`` is answered as
    aiohttp does; any other expectation is a JSON 417 (aiohttp would answer plain text,
    before the middlewares run), counted like every ingest answer."""
    if request.version != (1, 1):
        return None  # HTTP/1.0 has no Expect: ignored, as aiohttp does
    if request.headers.get("Expect", "").strip().lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the response proper has not started
        return None
    response = error_response(
        417, "expectation_failed", "only 'Expect: 100-continue' is supported", []
    )
    response.force_close()  # the body, if any, was never read
    if request.path == INGEST_PATH:
        request.app[METRICS].requests.labels("417").inc()
    return response


def _unexpected(request: web.Request, exc: Exception) -> web.Response:
    """A storage failure during a read is a 503 (the store is unavailable, not broken);
    anything else is voxmon's bug: a counted 500 with the traceback in the log."""
    kind = StorageHealth.classify(exc)
    if kind is not None:
        log.warning("%s %s: storage unavailable (%s): %s", request.method, request.path, kind, exc)
        return _voxmon_error(Unavailable(f"storage is unavailable ({kind}): {exc}", 2))
    log.error("unhandled error in %s %s", request.method, request.path, exc_info=exc)
    request.app[METRICS].internal_errors.inc()
    return error_response(500, "internal", "internal error; see the voxmon log", [])


def _voxmon_error(exc: VoxmonError) -> web.Response:
    response = error_response(exc.status, exc.code, exc.message, exc.details)
    headers = dict(exc.headers)
    if headers.pop("Connection", "") == "close":
        response.force_close()
    response.headers.update(headers)
    return response


def _http_error(exc: web.HTTPException) -> web.Response:
    code = _HTTP_CODES.get(exc.status, exc.reason.lower().replace(" ", "_"))
    response = error_response(exc.status, code, exc.text or exc.reason, [])
    for name in ("Allow", "Retry-After", "WWW-Authenticate"):
        if name in exc.headers:
            response.headers[name] = exc.headers[name]
    return response


def error_response(status: int, code: str, message: str, details: list[object]) -> web.Response:
    return json_response(Error(ErrorDetail(code, message, details)), status=status)
