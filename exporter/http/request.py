"""Reading request bodies within their limits: size (413) and time (408)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from exporter.errors import ClientClosedRequest, PayloadTooLarge, RequestTimeout


async def read_body(request: web.Request, limit: int, timeout_s: float) -> bytes:
    """The whole request body: 413 beyond ``limit`` bytes, 408 when it has not arrived
    within ``timeout_s`` (a client trickling its body holds a connection, not the daemon),
    499 when the client closes its connection first.
    A chunked body is refused as soon as more than ``limit`` bytes have arrived: aiohttp's
    ``read()`` checks the application's ``client_max_size`` after every chunk.
    A body that came with its head is read without a timeout, which would schedule and
    cancel a timer for a read that cannot wait (``finish_response`` in ``server.py``)."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"body is {request.content_length} bytes; at most {limit}")
    try:
        if request.content.is_eof():  # all of it has arrived: reading cannot wait
            body = await request.read()
        else:
            async with asyncio.timeout(timeout_s):
                body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"body exceeds max_body_bytes ({limit} bytes)") from None
    except ConnectionResetError:  # aiohttp's "Connection lost": the client went away
        raise ClientClosedRequest(
            "the client closed the connection before its body arrived", Connection="close"
        ) from None
    except TimeoutError:
        raise RequestTimeout(
            f"the request body did not arrive within {timeout_s:g} s (body_timeout_s)",
            Connection="close",
        ) from None
    if len(body) > limit:  # a chunked body has no Content-Length to refuse up front
        raise PayloadTooLarge(f"body exceeds max_body_bytes ({limit} bytes)")
    return body
