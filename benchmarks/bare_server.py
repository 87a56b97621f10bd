"""The HTTP floor of ``benchmarks/ingest.py``: aiohttp alone, with none of voxmon's work.
It answers ``POST /v1/events`` as voxmon would answer valid, new events (every item
accepted), after reading the body and splitting it into raw items with msgspec (no
validation, no storage, no counters), and ``GET /readyz`` with 200. The ingest benchmark
posts the same bodies to it from the same clients: the rate it reaches is what any daemon
built on aiohttp reaches here with that load before doing anything with the events.

Run: ``python benchmarks/bare_server.py PORT`` (127.0.0.1; stopped by SIGTERM).
"""

from __future__ import annotations

import sys

import msgspec
from aiohttp import web

_items = msgspec.json.Decoder(list[msgspec.Raw])
_encode = msgspec.json.encode


async def post_events(request: web.Request) -> web.Response:
    items = _items.decode(await request.read())
    answer = {"accepted": len(items), "duplicates": 0, "rejected": [], "warnings": []}
    return web.Response(body=_encode(answer), content_type="application/json")


async def ready(_: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ready"}', content_type="application/json")


def main() -> None:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/events", post_events)
    app.router.add_get("/readyz", ready)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
