"""Hostile and broken input over real HTTP: every item of the corpus is a 4xx with the JSON
error body, counted, and nothing reaches the catch-all 500."""

from __future__ import annotations

import asyncio
import gzip
from typing import Any

import msgspec
import pytest

from exporter.settings import Token
from exporter.windows import MinuteWindows
from tests.conftest import make_event
from tests.scrape import samples

DEEP = b"[" * 50_000 + b"]" * 50_000
DEEP_METADATA = msgspec.json.encode(make_event()).replace(
    b"}", b', "metadata": {"x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}}", 1
)


def error_of(body: dict[str, Any]) -> dict[str, Any]:
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    error: dict[str, Any] = body["error"]
    return error


async def internal_errors(client: Any) -> float:
    found = samples(await (await client.get("/metrics")).text(), "voxmon_http_internal")
    return found[("voxmon_http_internal_errors_total", ())]


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (DEEP, {}, 400, "bad_request"),
        (DEEP_METADATA, {}, 400, "bad_request"),
        (gzip.compress(b"[" + b",".join([b"{}"] * 2_600_000) + b"]"), {"Content-Encoding": "gzip"},
         413, "payload_too_large"),
        (b"{}", {"Content-Type": "application/json; charset=utf-16"}, 415,
         "unsupported_media_type"),
    ],
)  # fmt: skip
async def test_hostile_bodies_are_json_4xx(
    start_app: Any, body: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    client = await start_app()
    sent = {"Content-Type": "application/json", **headers}
    response = await client.post("/v1/events", data=body, headers=sent)
    assert response.status == status
    assert error_of(await response.json())["code"] == code
    metrics = await (await client.get("/metrics")).text()
    assert f'voxmon_ingest_requests_total{{code="{status}"}} 1.0' in metrics
    assert await internal_errors(client) == 0.0


@pytest.mark.parametrize(
    "timestamp",
    [
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        -(2**63),
        2**63,
        10**20,
    ],
)
@pytest.mark.parametrize("field", ["timestamp", "stage_started_at", "stage_completed_at"])
async def test_extreme_times_are_per_item_rejections(
    start_app: Any, field: str, timestamp: object
) -> None:
    client = await start_app()
    event = make_event(event_type="transcription_completed", **{field: timestamp})
    response = await client.post("/v1/events", json=[event, make_event()])
    body = await response.json()
    assert response.status == 200
    assert body["accepted"] == 1
    assert [r["index"] for r in body["rejected"]] == [0]
    assert body["rejected"][0]["errors"][0]["field"] in (field, "stage_started_at")
    assert await internal_errors(client) == 0.0


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/metrics/history", {"period": "hourly", "start": "1e20", "end": "2"}),
        ("/v1/metrics/history", {"period": "hourly", "start": str(2**63), "end": str(2**64)}),
        ("/v1/metrics/stages", {"period": "daily", "start": str(-(2**63)), "end": "0"}),
        ("/v1/metrics/orgs", {"period": "daily", "start": "0000-12-31T00:00:00Z", "end": "1"}),
        ("/v1/metrics/history", {"period": "hourly", "start": "-62135596800001", "end": "0"}),
        ("/v1/metrics/stages", {"period": "daily", "start": "0", "end": "253402300800000"}),
    ],
)
async def test_extreme_query_times_are_400(
    start_app: Any, path: str, query: dict[str, str]
) -> None:
    client = await start_app()
    response = await client.get(path, params=query)
    assert response.status == 400
    assert error_of(await response.json())["details"][0]["field"] in ("start", "end")
    assert await internal_errors(client) == 0.0


async def test_rollup_run_with_extreme_window_is_400(start_app: Any) -> None:
    client = await start_app()
    for start, end in (("1e20", "1e21"), ("9999-12-31T00:00:00Z", "9999-12-31T23:00:00Z")):
        response = await client.post(
            "/v1/rollups/rollup-hourly/run", params={"start": start, "end": end}
        )
        assert response.status == 400
    status = await (await client.get("/v1/rollups")).json()
    assert status["jobs"][0]["last_run"] is None


async def raw_request(client: Any, request: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(request)
    await writer.drain()
    response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


async def test_non_utf8_authorization_is_401(start_app: Any) -> None:
    client = await start_app(tokens=(Token("t", "reader-token-0000000000", frozenset({"read"})),))
    status, body = await raw_request(
        client,
        b"GET /v1/metrics/realtime HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer \xff\xfe\x80token\r\nConnection: close\r\n\r\n",
    )
    assert status == 401
    assert error_of(msgspec.json.decode(body))["code"] == "unauthorized"


async def test_unhandled_error_is_a_counted_json_500(
    start_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catch-all exists for voxmon's own bugs (an injected fault here): it still
    answers the JSON error body and counts it."""
    client = await start_app()

    def broken(*args: object) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(MinuteWindows, "totals", broken)
    response = await client.get("/v1/metrics/realtime")
    assert response.status == 500
    assert error_of(await response.json())["code"] == "internal"
    monkeypatch.undo()
    assert await internal_errors(client) == 1.0


async def test_aiohttp_own_413_uses_voxmon_code(start_app: Any) -> None:
    client = await start_app(max_body_bytes=1000)
    response = await client.put("/v1/orgs/acme", data=b'{"name": "' + b"x" * 5000 + b'"}')
    assert response.status == 413
    assert error_of(await response.json())["code"] == "payload_too_large"
